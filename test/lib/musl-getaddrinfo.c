/*
 * getaddrinfo(3) through the libc it is linked with (built with `musl-gcc -static` by
 * test/lib/musl-client.ts): prints every address of argv[1], one per line, and exits 0;
 * on failure prints gai_strerror's text to stderr and exits 2. argv[2] "4" or "6" limits
 * the family (default: AF_UNSPEC, as most programs ask).
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

int main(int argc, char **argv) {
  struct addrinfo hints, *res, *ai;
  char text[INET6_ADDRSTRLEN];
  int rc;
  if (argc < 2) {
    fprintf(stderr, "usage: %s NAME [4|6]\n", argv[0]);
    return 64;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  if (argc > 2 && strcmp(argv[2], "4") == 0) hints.ai_family = AF_INET;
  if (argc > 2 && strcmp(argv[2], "6") == 0) hints.ai_family = AF_INET6;
  hints.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo(argv[1], NULL, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "%s\n", gai_strerror(rc));
    return 2;
  }
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    const void *addr = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                                : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    if (inet_ntop(ai->ai_family, addr, text, sizeof text) != NULL) printf("%s\n", text);
  }
  freeaddrinfo(res);
  return 0;
}
