/* getaddrinfo(argv[1]) and print the first IPv4 address.
 * Runtime needs (glibc): NSS "hosts" -> /etc/hosts (+ DNS); musl reads /etc/hosts directly.
 * AF_INET + SOCK_STREAM keeps the answer to one address, so glibc does not sort
 * candidates (which would read /etc/gai.conf and probe routes). */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s HOSTNAME\n", argv[0]);
        return 2;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(argv[1], NULL, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo(%s) failed: %s (%d)\n", argv[1], gai_strerror(rc), rc);
        return 1;
    }
    char buf[INET_ADDRSTRLEN];
    const struct sockaddr_in *sin = (const struct sockaddr_in *)res->ai_addr;
    if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf) == NULL) {
        perror("inet_ntop");
        freeaddrinfo(res);
        return 1;
    }
    printf("%s\n", buf);
    freeaddrinfo(res);
    return 0;
}
