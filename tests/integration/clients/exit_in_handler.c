/* exit_in_handler.c - _exit() from a signal handler while the program
 * waits for a 100 Continue, as a program with the usual SIGALRM/SIGTERM
 * handler would: the handler can interrupt the shim's own work, holding
 * its locks, and _exit must not wait for them.
 *
 * usage: exit_in_handler PORT DELAY_US
 *
 * Writes the head of a POST with "Expect: 100-continue" (the shim answers
 * the 100 itself and holds the head for the key), arms a timer of
 * DELAY_US, and peeks at the answer in a loop until the handler calls
 * _exit(0). Exits 2 on an error before that.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void on_alarm(int sig)
{
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: exit_in_handler PORT DELAY_US\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        perror("connect");
        return 2;
    }
    char head[256];
    int n = snprintf(head, sizeof head, "POST /charge HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n"
                     "Content-Length: 10\r\nExpect: 100-continue\r\n\r\n", argv[1]);
    if (write(fd, head, (size_t)n) != n) {
        perror("write");
        return 2;
    }
    signal(SIGALRM, on_alarm);
    struct itimerval timer = { .it_value = { 0, atol(argv[2]) } };
    setitimer(ITIMER_REAL, &timer, NULL);
    char buf[64];
    for (;;)
        if (recv(fd, buf, sizeof buf, MSG_PEEK) <= 0) {
            perror("recv");
            return 2;
        }
}
