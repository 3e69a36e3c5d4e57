/* OpenSSL TLS client: connect to 127.0.0.1:argv[1], trust OpenSSL's default CA
 * locations (SSL_CTX_set_default_verify_paths: OPENSSLDIR/cert.pem and
 * OPENSSLDIR/certs, or SSL_CERT_FILE/SSL_CERT_DIR), verify the peer certificate
 * for IP 127.0.0.1, send "GET /" and print the HTTP status line.
 * Only ever talks to 127.0.0.1; socket timeouts bound every read and write. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int fail(const char *what) {
    fprintf(stderr, "%s failed\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT   (connects to 127.0.0.1:PORT)\n", argv[0]);
        return 2;
    }
    char *end = NULL;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port <= 0 || port > 65535) {
        fprintf(stderr, "bad port: %s\n", argv[1]);
        return 2;
    }

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return fail("SSL_CTX_new");
    if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        return fail("SSL_CTX_set_default_verify_paths");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect 127.0.0.1");
        return 1;
    }

    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return fail("SSL_new");
    /* Check the certificate's IP SAN against the address we dialled. */
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1") != 1)
        return fail("X509_VERIFY_PARAM_set1_ip_asc");
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        long vr = SSL_get_verify_result(ssl);
        fprintf(stderr, "TLS handshake failed: certificate verify result %ld (%s)\n", vr,
                X509_verify_cert_error_string(vr));
        ERR_print_errors_fp(stderr);
        return 1;
    }

    static const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
        return fail("SSL_write");
    char buf[4096];
    size_t len = 0;
    int n;
    while (len < sizeof buf - 1 && (n = SSL_read(ssl, buf + len, (int)(sizeof buf - 1 - len))) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    char *eol = strstr(buf, "\r\n");
    if (eol == NULL) {
        fprintf(stderr, "no HTTP status line in %zu bytes of response\n", len);
        return 1;
    }
    *eol = '\0';
    printf("%s\n", buf);
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    return 0;
}
