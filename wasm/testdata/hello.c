/*
 * Tiny WASI preview1 test program for sandboxer's wasm tier.
 *
 *   hello [args...]   prints "hello from wasi", then each argv entry on its
 *                     own line (argv[0] included)
 *   hello cat         ... then copies stdin to stdout
 *   hello escape      ... then tries to open /etc/passwd and prints
 *                     "blocked" (expected) or "OPENED"
 *   hello exit7       ... then exits with code 7
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int i;
    printf("hello from wasi\n");
    for (i = 0; i < argc; i++)
        printf("%s\n", argv[i]);
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "cat") == 0) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
            fwrite(buf, 1, n, stdout);
        fflush(stdout);
    } else if (argc > 1 && strcmp(argv[1], "escape") == 0) {
        FILE *f = fopen("/etc/passwd", "r");
        if (f) {
            printf("OPENED\n");
            fclose(f);
        } else {
            printf("blocked\n");
        }
        fflush(stdout);
    } else if (argc > 1 && strcmp(argv[1], "exit7") == 0) {
        return 7;
    }
    return 0;
}
