/* secure_exec.c - a client for the setuid/setgid test: tells whether it
 * runs in secure-execution mode and whether a library was preloaded into
 * it, then sends its standard input to a server and reads the answer
 * (standard input: a setuid program may not be able to open the file).
 *
 * usage: secure_exec PORT LIBNAME < REQUEST
 *
 * Prints "secure=S loaded=L" (S: getauxval(AT_SECURE); L: 1 when a mapping
 * in /proc/self/maps names a file whose name contains LIBNAME), then
 * everything received. Exits 0 once the server closed the connection or
 * sent the head of an answer, 1 on any error.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <unistd.h>

static int mapped(const char *name)
{
    char line[4096];
    int found = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char request[65536], answer[65536];
    if (argc != 3) {
        fprintf(stderr, "usage: secure_exec PORT LIBNAME < REQUEST\n");
        return 1;
    }
    printf("secure=%lu loaded=%d\n", getauxval(AT_SECURE), mapped(argv[2]));
    fflush(stdout);
    size_t n = fread(request, 1, sizeof request, stdin);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (n == 0 || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send_all(fd, request, n) != 0) {
        perror("secure_exec");
        return 1;
    }
    size_t got = 0;
    ssize_t r;
    while (got < sizeof answer - 1 && (r = read(fd, answer + got, sizeof answer - 1 - got)) > 0) {
        got += (size_t)r;
        answer[got] = '\0';
        if (strstr(answer, "\r\n\r\n"))
            break;
    }
    fwrite(answer, 1, got, stdout);
    close(fd);
    return got > 0 ? 0 : 1;
}
