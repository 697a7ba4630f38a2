/*
 * bench/engine: the bit-exact generator of the "Sales" benchmark model
 * (/work/shared/bench/SALES_MODEL.md §1) and an MD5 to check its files. Used by the
 * benchmark program and, through #include of the .c files, by the engine's unit test.
 */
#ifndef TSR_SALESGEN_H
#define TSR_SALESGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Write Customers.csv, Products.csv, Calendar.csv and Sales.csv (n_rows lines) into dir.
 * Returns 0, or -1 with errno set. */
int tsr_salesgen_write_dir(const char *dir, uint64_t n_rows, uint32_t seed);

/* Each table to a stream. Return 0 or -1 on a write error. */
int tsr_salesgen_customers(FILE *out, uint32_t seed);
int tsr_salesgen_products(FILE *out, uint32_t seed);
int tsr_salesgen_calendar(FILE *out);
int tsr_salesgen_sales(FILE *out, uint64_t n_rows, uint32_t seed);

/* MD5 of a file as 32 lowercase hex characters + NUL. Returns 0 or -1. */
int tsr_salesgen_md5_file(const char *path, char hex[33]);
/* MD5 of n bytes at p. */
void tsr_salesgen_md5_buf(const void *p, size_t n, char hex[33]);

#endif
