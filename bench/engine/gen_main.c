/*
 * bench/engine: tsr-salesgen DIR N [SEED] — write the Sales model's four CSV files into DIR
 * and print their MD5 sums (compare with SALES_MODEL.md §1.3).
 */
#include <stdio.h>
#include <stdlib.h>

#include "salesgen.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR N_ROWS [SEED]\n", argv[0]);
        return 2;
    }
    char *end;
    unsigned long long n = strtoull(argv[2], &end, 10);
    unsigned long seed = argc > 3 ? strtoul(argv[3], NULL, 10) : 42;
    if (*end != '\0' || n == 0) {
        fprintf(stderr, "bad N_ROWS\n");
        return 2;
    }
    if (tsr_salesgen_write_dir(argv[1], n, (uint32_t)seed) != 0) {
        perror("write");
        return 1;
    }
    static const char *const names[] = {"Customers.csv", "Products.csv", "Calendar.csv",
                                        "Sales.csv"};
    for (int i = 0; i < 4; i++) {
        char path[4096], hex[33];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        if (tsr_salesgen_md5_file(path, hex) != 0) {
            perror(path);
            return 1;
        }
        printf("%s  %s\n", hex, names[i]);
    }
    return 0;
}
