/* tool.h - the retrysafe command's subcommands. Each returns the exit
 * status: 0 success, 1 a negative answer, 2 a usage or runtime error. */
#ifndef RETRYSAFE_TOOL_H
#define RETRYSAFE_TOOL_H

int cmd_run(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

/* Prints "retrysafe: <message>" to stderr and returns 2. */
int tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
