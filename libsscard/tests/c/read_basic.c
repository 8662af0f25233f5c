/*
 * A counter program's use of libsscard.so, as the tests drive it (libsscard/tests/c_api.rs).
 *
 *   read_basic ITYPE [N]                        iReadCardBas, N times (default 1)
 *   read_card ITYPE CARDINFO FILEADDR           iReadCard (iAuthType 0)
 *   write_card ITYPE CARDINFO FILEADDR DATA     iWriteCard
 *   hsm_basic ITYPE                             iReadCardBas_HSM_Step1, then Step2 with the line read on stdin
 *   step2 KEY                                   iReadCardBas_HSM_Step2 alone
 *   nulls                                       every function with NULL pointers
 *
 * Each call prints two lines: "code N" and "out " followed by the output's bytes (GBK) up to its NUL.
 *
 * Output buffers are exactly the published size. By default each is followed by CANARY bytes of 0xA5 in the same
 * allocation, checked after the call (exit 3 if one changed); with SSCARD_TEST_EXACT set, the buffer is an
 * allocation of exactly the published size, so that valgrind reports a write past it. Exit 4: the output has no
 * NUL within the buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sscard.h"

#define CANARY 64
#define FILL 0xA5

static int exact;

static char *out_buffer(size_t size) {
    size_t total = exact ? size : size + CANARY;
    char *buf = malloc(total);
    if (buf == NULL) {
        perror("malloc");
        exit(2);
    }
    memset(buf, FILL, total);
    return buf;
}

static void report(long code, char *buf, size_t size) {
    size_t i;
    if (!exact) {
        for (i = size; i < size + CANARY; i++) {
            if ((unsigned char)buf[i] != FILL) {
                printf("canary damaged at offset %zu\n", i);
                exit(3);
            }
        }
    }
    if (memchr(buf, 0, size) == NULL) {
        printf("no NUL within the %zu-byte buffer\n", size);
        exit(4);
    }
    printf("code %ld\nout ", code);
    fwrite(buf, 1, strlen(buf), stdout);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    char *buf;
    long code;
    exact = getenv("SSCARD_TEST_EXACT") != NULL;
    if (argc < 2) {
        fprintf(stderr, "usage: read_basic COMMAND ARGS...\n");
        return 2;
    }
    if (strcmp(argv[1], "read_basic") == 0 && (argc == 3 || argc == 4)) {
        int i, n = argc == 4 ? atoi(argv[3]) : 1;
        buf = out_buffer(SSCARD_BASIC_OUT_SIZE);
        for (i = 0; i < n; i++) {
            memset(buf, FILL, exact ? SSCARD_BASIC_OUT_SIZE : SSCARD_BASIC_OUT_SIZE + CANARY);
            code = iReadCardBas(atoi(argv[2]), buf);
            report(code, buf, SSCARD_BASIC_OUT_SIZE);
        }
    } else if (strcmp(argv[1], "read_card") == 0 && argc == 5) {
        buf = out_buffer(SSCARD_ITEMS_SIZE);
        code = iReadCard(atoi(argv[2]), 0, argv[3], argv[4], buf);
        report(code, buf, SSCARD_ITEMS_SIZE);
    } else if (strcmp(argv[1], "write_card") == 0 && argc == 6) {
        buf = out_buffer(SSCARD_WRITE_OUT_SIZE);
        code = iWriteCard(atoi(argv[2]), argv[3], argv[4], argv[5], buf);
        report(code, buf, SSCARD_WRITE_OUT_SIZE);
    } else if (strcmp(argv[1], "hsm_basic") == 0 && argc == 3) {
        char key[SSCARD_HSM_KEY_SIZE];
        buf = out_buffer(SSCARD_BASIC_OUT_SIZE);
        code = iReadCardBas_HSM_Step1(atoi(argv[2]), buf);
        report(code, buf, SSCARD_BASIC_OUT_SIZE);
        if (code != 0) {
            free(buf);
            return 0;
        }
        if (fgets(key, sizeof key, stdin) == NULL) {
            fprintf(stderr, "no answer on stdin\n");
            return 2;
        }
        key[strcspn(key, "\r\n")] = 0;
        memset(buf, FILL, exact ? SSCARD_BASIC_OUT_SIZE : SSCARD_BASIC_OUT_SIZE + CANARY);
        code = iReadCardBas_HSM_Step2(key, buf);
        report(code, buf, SSCARD_BASIC_OUT_SIZE);
    } else if (strcmp(argv[1], "step2") == 0 && argc == 3) {
        buf = out_buffer(SSCARD_BASIC_OUT_SIZE);
        code = iReadCardBas_HSM_Step2(argv[2], buf);
        report(code, buf, SSCARD_BASIC_OUT_SIZE);
    } else if (strcmp(argv[1], "nulls") == 0 && argc == 2) {
        char info[] = "371700D15600000500000000000000A2|A0000001T|";
        char addr[] = "SSSEEF05|05|$";
        char data[] = "SSSEEF05|20200101|$";
        buf = out_buffer(SSCARD_ITEMS_SIZE);
        printf("iReadCardBas %ld\n", iReadCardBas(1, NULL));
        printf("iReadCard.pCardInfo %ld\n", iReadCard(1, 0, NULL, addr, buf));
        printf("iReadCard.pFileAddr %ld\n", iReadCard(1, 0, info, NULL, buf));
        printf("iReadCard.pOutInfo %ld\n", iReadCard(1, 0, info, addr, NULL));
        printf("iWriteCard.pWriteData %ld\n", iWriteCard(1, info, addr, NULL, buf));
        printf("iWriteCard.pOutInfo %ld\n", iWriteCard(1, info, addr, data, NULL));
        printf("iReadCardBas_HSM_Step1 %ld\n", iReadCardBas_HSM_Step1(1, NULL));
        printf("iReadCardBas_HSM_Step2.pKey %ld\n", iReadCardBas_HSM_Step2(NULL, buf));
        printf("iReadCardBas_HSM_Step2.pOutInfo %ld\n", iReadCardBas_HSM_Step2(info, NULL));
    } else {
        fprintf(stderr, "unknown command or wrong arguments: %s\n", argv[1]);
        return 2;
    }
    free(buf);
    return 0;
}
