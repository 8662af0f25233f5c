/*
 * A counter program's use of libsscard.so, as the tests drive it (libsscard/tests/c_api.rs).
 *
 *   read_basic ITYPE [N]                        iReadCardBas, N times (default 1)
 *   read_card ITYPE CARDINFO FILEADDR           iReadCard (iAuthType 0)
 *   write_card ITYPE CARDINFO FILEADDR DATA     iWriteCard
 *   hsm_basic ITYPE                             iReadCardBas_HSM_Step1, then Step2 with the line read on stdin
 *   step2 KEY                                   iReadCardBas_HSM_Step2 alone
 *   hsm_items ITYPE CARDINFO FILEADDR           iReadCard_HSM_Step1, then Step2 with the line read on stdin
 *   hsm_write ITYPE CARDINFO FILEADDR DATA      iWriteCard_HSM_Step1, then Step2 with the line read on stdin
 *   items_step2 KEY                             iReadCard_HSM_Step2 alone
 *   verify_pin ITYPE PIN                        iVerifyPin (the vendor variant with the PIN)
 *   change_pin ITYPE OLD NEW                    iChangePin (the vendor variant)
 *   verify_pin_entered ITYPE                    iVerifyPIN (the PIN asked by the library)
 *   change_pin_entered ITYPE                    iChangePIN
 *   reset_pin ITYPE CARDINFO reload|unblock     iReloadPIN or iUnblockPIN (the new PIN asked by the library)
 *   hsm_pin ITYPE CARDINFO reload|unblock       i{Reload,Unblock}PIN_HSM_Step1, Step2 and Step3 with the first and
 *                                               second lines read on stdin as their pKey
 *   read_basic_twice ITYPE                      iReadCardBas, then (after a line on stdin) iReadCardBas again
 *   nulls                                       every function with NULL pointers
 *   threads ITYPE T N                           T threads, N iReadCardBas each: "threads ok" when every call
 *                                               gave the first call's code and string, else the first difference
 *   growth ITYPE N                              2000 calls, then N more of a mix (see below): "rss BEFORE_KB
 *                                               AFTER_KB" (VmRSS) and "failures F" (calls that did not return the
 *                                               code expected of them)
 *   hsm_hold ITYPE                              Step1, iReadCardBas on the held card (it waits for the hold to
 *                                               end), Step2 (too late), each reported
 *
 * Each call prints two lines: "code N" and "out " followed by the output's bytes (GBK) up to its NUL.
 *
 * Output buffers are exactly the published size. By default each is followed by CANARY bytes of 0xA5 in the same
 * allocation, checked after the call (exit 3 if one changed); with SSCARD_TEST_EXACT set, the buffer is an
 * allocation of exactly the published size, so that valgrind reports a write past it. Exit 4: the output has no
 * NUL within the buffer.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

struct worker {
    int itype;
    int calls;
    long first_code;
    const char *first_out;
    int differ; /* the call that differed, from 1; 0 if none */
    long code;
};

static void *work(void *arg) {
    struct worker *w = arg;
    char buf[SSCARD_BASIC_OUT_SIZE];
    int i;
    for (i = 0; i < w->calls; i++) {
        w->code = iReadCardBas(w->itype, buf);
        if (w->code != w->first_code || strcmp(buf, w->first_out) != 0) {
            w->differ = i + 1;
            break;
        }
    }
    return NULL;
}

static long rss_kb(void) {
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return kb;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
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
    } else if ((strcmp(argv[1], "hsm_items") == 0 && argc == 5) || (strcmp(argv[1], "hsm_write") == 0 && argc == 6)) {
        /* the published pKey is 32 characters: C||R4, the NUL after them */
        char key[SSCARD_HSM_ITEMS_KEY_LEN + 2];
        int write = argc == 6;
        size_t size = write ? SSCARD_WRITE_OUT_SIZE : SSCARD_ITEMS_SIZE;
        buf = out_buffer(size > SSCARD_HSM_STEP1_OUT_SIZE ? size : SSCARD_HSM_STEP1_OUT_SIZE);
        if (write) {
            code = iWriteCard_HSM_Step1(atoi(argv[2]), argv[3], argv[4], buf);
        } else {
            code = iReadCard_HSM_Step1(atoi(argv[2]), argv[3], argv[4], buf);
        }
        report(code, buf, SSCARD_HSM_STEP1_OUT_SIZE);
        if (code != 0) {
            free(buf);
            return 0;
        }
        if (fgets(key, sizeof key, stdin) == NULL) {
            fprintf(stderr, "no answer on stdin\n");
            return 2;
        }
        key[strcspn(key, "\r\n")] = 0;
        free(buf);
        buf = out_buffer(size);
        if (write) {
            code = iWriteCard_HSM_Step2(key, argv[5], buf);
        } else {
            code = iReadCard_HSM_Step2(key, buf);
        }
        report(code, buf, size);
    } else if (strcmp(argv[1], "verify_pin") == 0 && argc == 4) {
        buf = out_buffer(SSCARD_PIN_OUT_SIZE);
        code = iVerifyPin(atoi(argv[2]), argv[3], buf);
        report(code, buf, SSCARD_PIN_OUT_SIZE);
    } else if (strcmp(argv[1], "change_pin") == 0 && argc == 5) {
        buf = out_buffer(SSCARD_PIN_OUT_SIZE);
        code = iChangePin(atoi(argv[2]), argv[3], argv[4], buf);
        report(code, buf, SSCARD_PIN_OUT_SIZE);
    } else if (strcmp(argv[1], "verify_pin_entered") == 0 && argc == 3) {
        buf = out_buffer(SSCARD_PIN_OUT_SIZE);
        code = iVerifyPIN(atoi(argv[2]), buf);
        report(code, buf, SSCARD_PIN_OUT_SIZE);
    } else if (strcmp(argv[1], "change_pin_entered") == 0 && argc == 3) {
        buf = out_buffer(SSCARD_PIN_OUT_SIZE);
        code = iChangePIN(atoi(argv[2]), buf);
        report(code, buf, SSCARD_PIN_OUT_SIZE);
    } else if (strcmp(argv[1], "reset_pin") == 0 && argc == 5) {
        buf = out_buffer(SSCARD_PIN_OUT_SIZE);
        if (strcmp(argv[4], "unblock") == 0) {
            code = iUnblockPIN(atoi(argv[2]), argv[3], buf);
        } else {
            code = iReloadPIN(atoi(argv[2]), argv[3], buf);
        }
        report(code, buf, SSCARD_PIN_OUT_SIZE);
    } else if (strcmp(argv[1], "hsm_pin") == 0 && argc == 5) {
        char key[SSCARD_PIN_STEP3_KEY_LEN + 2];
        int unblock = strcmp(argv[4], "unblock") == 0;
        buf = out_buffer(SSCARD_HSM_STEP1_OUT_SIZE);
        code = unblock ? iUnblockPIN_HSM_Step1(atoi(argv[2]), argv[3], buf)
                       : iReloadPIN_HSM_Step1(atoi(argv[2]), argv[3], buf);
        report(code, buf, SSCARD_HSM_STEP1_OUT_SIZE);
        if (code != 0) {
            free(buf);
            return 0;
        }
        if (fgets(key, sizeof key, stdin) == NULL) {
            fprintf(stderr, "no Step2 key on stdin\n");
            return 2;
        }
        key[strcspn(key, "\r\n")] = 0;
        free(buf);
        buf = out_buffer(SSCARD_PIN_STEP2_OUT_SIZE);
        code = unblock ? iUnblockPIN_HSM_Step2(key, buf) : iReloadPIN_HSM_Step2(key, buf);
        report(code, buf, SSCARD_PIN_STEP2_OUT_SIZE);
        if (code != 0) {
            free(buf);
            return 0;
        }
        if (fgets(key, sizeof key, stdin) == NULL) {
            fprintf(stderr, "no Step3 key on stdin\n");
            return 2;
        }
        key[strcspn(key, "\r\n")] = 0;
        free(buf);
        buf = out_buffer(SSCARD_PIN_OUT_SIZE);
        code = unblock ? iUnblockPIN_HSM_Step3(key, buf) : iReloadPIN_HSM_Step3(key, buf);
        report(code, buf, SSCARD_PIN_OUT_SIZE);
    } else if (strcmp(argv[1], "items_step2") == 0 && argc == 3) {
        buf = out_buffer(SSCARD_ITEMS_SIZE);
        code = iReadCard_HSM_Step2(argv[2], buf);
        report(code, buf, SSCARD_ITEMS_SIZE);
    } else if (strcmp(argv[1], "read_basic_twice") == 0 && argc == 3) {
        char line[16];
        buf = out_buffer(SSCARD_BASIC_OUT_SIZE);
        code = iReadCardBas(atoi(argv[2]), buf);
        report(code, buf, SSCARD_BASIC_OUT_SIZE);
        if (fgets(line, sizeof line, stdin) == NULL) {
            fprintf(stderr, "no line on stdin\n");
            return 2;
        }
        memset(buf, FILL, exact ? SSCARD_BASIC_OUT_SIZE : SSCARD_BASIC_OUT_SIZE + CANARY);
        code = iReadCardBas(atoi(argv[2]), buf);
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
        printf("iReadCard_HSM_Step1.pCardInfo %ld\n", iReadCard_HSM_Step1(1, NULL, addr, buf));
        printf("iReadCard_HSM_Step1.pFileAddr %ld\n", iReadCard_HSM_Step1(1, info, NULL, buf));
        printf("iReadCard_HSM_Step1.pOutInfo %ld\n", iReadCard_HSM_Step1(1, info, addr, NULL));
        printf("iReadCard_HSM_Step2.pKey %ld\n", iReadCard_HSM_Step2(NULL, buf));
        printf("iReadCard_HSM_Step2.pOutInfo %ld\n", iReadCard_HSM_Step2(addr, NULL));
        printf("iWriteCard_HSM_Step1.pCardInfo %ld\n", iWriteCard_HSM_Step1(1, NULL, addr, buf));
        printf("iWriteCard_HSM_Step1.pOutInfo %ld\n", iWriteCard_HSM_Step1(1, info, addr, NULL));
        printf("iWriteCard_HSM_Step2.pKey %ld\n", iWriteCard_HSM_Step2(NULL, data, buf));
        printf("iWriteCard_HSM_Step2.pWriteData %ld\n", iWriteCard_HSM_Step2(addr, NULL, buf));
        printf("iWriteCard_HSM_Step2.pOutInfo %ld\n", iWriteCard_HSM_Step2(addr, data, NULL));
        printf("iVerifyPIN %ld\n", iVerifyPIN(1, NULL));
        printf("iChangePIN %ld\n", iChangePIN(1, NULL));
        printf("iReloadPIN.pCardInfo %ld\n", iReloadPIN(1, NULL, buf));
        printf("iUnblockPIN.pOutInfo %ld\n", iUnblockPIN(1, info, NULL));
        printf("iReloadPIN_HSM_Step1.pCardInfo %ld\n", iReloadPIN_HSM_Step1(1, NULL, buf));
        printf("iReloadPIN_HSM_Step2.pKey %ld\n", iReloadPIN_HSM_Step2(NULL, buf));
        printf("iReloadPIN_HSM_Step3.pOutInfo %ld\n", iReloadPIN_HSM_Step3(addr, NULL));
        printf("iUnblockPIN_HSM_Step1.pOutInfo %ld\n", iUnblockPIN_HSM_Step1(1, info, NULL));
        printf("iUnblockPIN_HSM_Step2.pOutInfo %ld\n", iUnblockPIN_HSM_Step2(addr, NULL));
        printf("iUnblockPIN_HSM_Step3.pKey %ld\n", iUnblockPIN_HSM_Step3(NULL, buf));
        printf("iVerifyPin.pPin %ld\n", iVerifyPin(1, NULL, buf));
        printf("iChangePin.pNewPin %ld\n", iChangePin(1, addr, NULL, buf));
    } else if (strcmp(argv[1], "threads") == 0 && argc == 5) {
        int i, t = atoi(argv[3]);
        pthread_t ids[64];
        struct worker ws[64];
        if (t < 1 || t > 64) {
            return 2;
        }
        buf = out_buffer(SSCARD_BASIC_OUT_SIZE);
        code = iReadCardBas(atoi(argv[2]), buf);
        for (i = 0; i < t; i++) {
            ws[i] = (struct worker){atoi(argv[2]), atoi(argv[4]), code, buf, 0, 0};
            if (pthread_create(&ids[i], NULL, work, &ws[i]) != 0) {
                return 2;
            }
        }
        for (i = 0; i < t; i++) {
            pthread_join(ids[i], NULL);
        }
        for (i = 0; i < t; i++) {
            if (ws[i].differ) {
                printf("thread %d call %d: code %ld, first call %ld\n", i, ws[i].differ, ws[i].code, code);
                free(buf);
                return 0;
            }
        }
        printf("threads ok code %ld\n", code);
    } else if (strcmp(argv[1], "growth") == 0 && argc == 4) {
        /* 2000 calls, then N in a mix that runs every part of the library: of each 10, 2 iReadCardBas and 1 iReadCard
         * on the card, 7 calls refused before the card (bad address, bad GBK, no contactless reader, Step2 with no
         * Step1, bad data); every 100th pair is a two-step read answered wrongly (a held card, a thread, -21). */
        int i, n = atoi(argv[3]), failures = 0, itype = atoi(argv[2]);
        long before = 0, expect;
        char info[] = "371700D15600000500000000000000A2|A0000001T|";
        char good[] = "SSSEEF05|05|07|$";
        char bad[] = "SSSEEF05|5|$";
        char notgbk[] = "SSSEEF05|05|$\xff\xff";
        char baddata[] = "SSSEEF05|2020|$";
        char zeros[] = "0000000000000000|0000000000000000|";
        char key32[] = "00000000000000000000000000000000";
        buf = out_buffer(SSCARD_ITEMS_SIZE);
        /* the warm-up is of the same mix: the two-step threads' first runs give glibc its per-thread arenas */
        for (i = 0; i < 2000 + n; i++) {
            if (i == 2000) {
                before = rss_kb();
            }
            if (getenv("SSCARD_TEST_RSS_TRACE") != NULL && i % 2000 == 0) {
                fprintf(stderr, "rss at %d: %ld\n", i, rss_kb());
            }
            switch (i % 10) {
            case 0:
            case 5:
                code = iReadCardBas(itype, buf), expect = 0;
                break;
            case 1:
                code = iReadCard(itype, 0, info, good, buf), expect = 0;
                break;
            case 2:
                code = iReadCard(itype, 0, info, bad, buf), expect = -14;
                break;
            case 3:
                code = iReadCard(itype, 0, info, notgbk, buf), expect = -41;
                break;
            case 4:
                code = iReadCardBas(2, buf), expect = -13;
                break;
            case 6:
                code = iReadCardBas_HSM_Step2(zeros, buf), expect = -14;
                break;
            case 7:
                code = iWriteCard(itype, info, good, baddata, buf), expect = -14;
                break;
            case 8:
                code = iReadCard_HSM_Step2(key32, buf), expect = -14;
                break;
            default:
                if (i % 100 == 9) {
                    code = iReadCardBas_HSM_Step1(itype, buf), expect = 0;
                    if (code == expect) {
                        code = iReadCardBas_HSM_Step2(zeros, buf), expect = -21;
                    }
                } else {
                    code = iReloadPIN_HSM_Step3(zeros, buf), expect = -14;
                }
            }
            if (code != expect) {
                if (failures == 0) {
                    printf("call %d: code %ld, expected %ld\n", i, code, expect);
                }
                failures++;
            }
        }
        printf("rss %ld %ld\nfailures %d\n", before, rss_kb(), failures);
    } else if (strcmp(argv[1], "hsm_hold") == 0 && argc == 3) {
        double start;
        buf = out_buffer(SSCARD_BASIC_OUT_SIZE);
        code = iReadCardBas_HSM_Step1(atoi(argv[2]), buf);
        report(code, buf, SSCARD_BASIC_OUT_SIZE);
        start = now();
        code = iReadCardBas(atoi(argv[2]), buf);
        report(code, buf, SSCARD_BASIC_OUT_SIZE);
        printf("waited %.3f\n", now() - start);
        code = iReadCardBas_HSM_Step2("0000000000000000|0000000000000000|", buf);
        report(code, buf, SSCARD_BASIC_OUT_SIZE);
    } else {
        fprintf(stderr, "unknown command or wrong arguments: %s\n", argv[1]);
        return 2;
    }
    free(buf);
    return 0;
}
