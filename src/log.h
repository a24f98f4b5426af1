/* log.h - diagnostics, safe to call from any hook.
 *
 * One line per message, "retrysafe[pid]: level: text", written with a single
 * write() to stderr or RETRYSAFE_LOG_FILE. No allocation, no stdio locks.
 */
#ifndef RETRYSAFE_LOG_H
#define RETRYSAFE_LOG_H

#include "config.h"

void log_open(enum config_log_level level, const char *file);
int log_enabled(enum config_log_level level);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void log_msg(enum config_log_level level, const char *fmt, ...);

#endif
