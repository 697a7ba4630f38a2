/*
 * bench/engine: Sales model generator, bit-exact to SALES_MODEL.md (integer arithmetic
 * only, wrapping 32-bit), plus a compact MD5 (RFC 1321) to verify the files it writes.
 */
#include "salesgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

static uint32_t rnd(uint32_t seed, uint32_t c, uint64_t i) {
    return mix32((uint32_t)i * 0x9E3779B1u + c * 0x632BE5ABu + seed);
}

static uint32_t unif(uint32_t seed, uint32_t c, uint64_t i, uint32_t n) {
    return rnd(seed, c, i) % n;
}

static uint32_t skew(uint32_t seed, uint32_t c, uint64_t i, uint32_t n) {
    uint64_t r = rnd(seed, c, i);
    return (uint32_t)((((r * r) >> 32) * n) >> 32);
}

/* Civil date from days since 1970-01-01 (H. Hinnant's civil_from_days). */
static void civil(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

#define DAY_2020_01_01 18262 /* days since 1970-01-01 */
#define N_DAYS 1827
#define N_CUSTOMERS 100000
#define N_PRODUCTS 5000

static const char *const segments[4] = {"Consumer", "Corporate", "Home Office", "Small Business"};

int tsr_salesgen_customers(FILE *out, uint32_t seed) {
    if (fputs("CustomerID,CustomerName,Country,Region,Segment\n", out) == EOF)
        return -1;
    for (uint32_t j = 0; j < N_CUSTOMERS; j++) {
        uint32_t k = skew(seed, 10, j, 50);
        if (fprintf(out, "%u,Customer %06u,Country %02u,Region %u,%s\n", j + 1, j + 1, k, k % 8,
                    segments[unif(seed, 11, j, 4)]) < 0)
            return -1;
    }
    return 0;
}

static uint32_t list_price_cents(uint32_t seed, uint32_t j) {
    return 100 + unif(seed, 21, j, 99900);
}

int tsr_salesgen_products(FILE *out, uint32_t seed) {
    if (fputs("ProductID,ProductName,Category,SubCategory,ListPrice\n", out) == EOF)
        return -1;
    for (uint32_t j = 0; j < N_PRODUCTS; j++) {
        uint32_t s = unif(seed, 20, j, 200);
        uint32_t lp = list_price_cents(seed, j);
        if (fprintf(out, "%u,Product %04u,Category %02u,SubCategory %03u,%u.%02u\n", j + 1, j + 1,
                    s / 10, s, lp / 100, lp % 100) < 0)
            return -1;
    }
    return 0;
}

int tsr_salesgen_calendar(FILE *out) {
    if (fputs("OrderDate,Year,Quarter,Month,YearMonth\n", out) == EOF)
        return -1;
    for (int k = 0; k < N_DAYS; k++) {
        int y, m, d;
        civil(DAY_2020_01_01 + k, &y, &m, &d);
        if (fprintf(out, "%04d-%02d-%02d,%d,Q%d,%d,%04d-%02d\n", y, m, d, y, (m - 1) / 3 + 1, m, y,
                    m) < 0)
            return -1;
    }
    return 0;
}

/* Append the decimal digits of v to p; returns the new end. */
static char *put_u(char *p, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

int tsr_salesgen_sales(FILE *out, uint64_t n_rows, uint32_t seed) {
    static const char header[] =
        "OrderID,OrderDate,CustomerID,ProductID,Quantity,UnitPrice,Discount\n";
    static const char *const disc[5] = {"0.00", "0.05", "0.10", "0.15", "0.20"};
    uint32_t *lpc = malloc(N_PRODUCTS * sizeof *lpc);
    char date_txt[N_DAYS][11];
    int date_year[N_DAYS];
    char line[128];
    int rc = 0;
    if (lpc == NULL)
        return -1;
    for (uint32_t j = 0; j < N_PRODUCTS; j++)
        lpc[j] = list_price_cents(seed, j);
    for (int k = 0; k < N_DAYS; k++) {
        int y, m, d;
        civil(DAY_2020_01_01 + k, &y, &m, &d);
        snprintf(date_txt[k], sizeof date_txt[k], "%04d-%02d-%02d", y, m, d);
        date_year[k] = y;
    }
    if (fputs(header, out) == EOF)
        rc = -1;
    uint64_t order = 0;
    uint32_t day = 0, cust = 0;
    for (uint64_t i = 0; i < n_rows && rc == 0; i++) {
        if (i == 0 || unif(seed, 1, i, 4) == 0) {
            order++;
            day = unif(seed, 4, order, N_DAYS);
            cust = 1 + skew(seed, 3, order, N_CUSTOMERS);
        }
        uint32_t prod = 1 + skew(seed, 5, i, N_PRODUCTS);
        uint32_t qty = 1 + unif(seed, 6, i, 10);
        uint32_t d = unif(seed, 7, i, 10);
        uint64_t cents =
            (uint64_t)lpc[prod - 1] * (uint64_t)(100 + 3 * (date_year[day] - 2020)) / 100;
        char *p = line;
        p = put_u(p, order);
        *p++ = ',';
        memcpy(p, date_txt[day], 10);
        p += 10;
        *p++ = ',';
        p = put_u(p, cust);
        *p++ = ',';
        p = put_u(p, prod);
        *p++ = ',';
        p = put_u(p, qty);
        *p++ = ',';
        p = put_u(p, cents / 100);
        *p++ = '.';
        *p++ = (char)('0' + cents % 100 / 10);
        *p++ = (char)('0' + cents % 10);
        *p++ = ',';
        memcpy(p, disc[d <= 5 ? 0 : d - 5], 4);
        p += 4;
        *p++ = '\n';
        if (fwrite(line, 1, (size_t)(p - line), out) != (size_t)(p - line))
            rc = -1;
    }
    free(lpc);
    return rc;
}

static int write_one(const char *dir, const char *name, int which, uint64_t n, uint32_t seed) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    static char buf[1 << 20];
    setvbuf(f, buf, _IOFBF, sizeof buf);
    int rc;
    switch (which) {
    case 0:
        rc = tsr_salesgen_customers(f, seed);
        break;
    case 1:
        rc = tsr_salesgen_products(f, seed);
        break;
    case 2:
        rc = tsr_salesgen_calendar(f);
        break;
    default:
        rc = tsr_salesgen_sales(f, n, seed);
        break;
    }
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

int tsr_salesgen_write_dir(const char *dir, uint64_t n_rows, uint32_t seed) {
    if (write_one(dir, "Customers.csv", 0, 0, seed) != 0 ||
        write_one(dir, "Products.csv", 1, 0, seed) != 0 ||
        write_one(dir, "Calendar.csv", 2, 0, seed) != 0 ||
        write_one(dir, "Sales.csv", 3, n_rows, seed) != 0)
        return -1;
    return 0;
}

/* ---- MD5 (RFC 1321) ---- */

typedef struct {
    uint32_t h[4];
    uint64_t len;
    unsigned char buf[64];
    size_t n;
} md5_t;

static uint32_t rol(uint32_t x, unsigned c) {
    return (x << c) | (x >> (32 - c));
}

static void md5_block(md5_t *s, const unsigned char *p) {
    static const uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391};
    static const unsigned R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                   5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                   4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                   6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[i * 4] | (uint32_t)p[i * 4 + 1] << 8 | (uint32_t)p[i * 4 + 2] << 16 |
               (uint32_t)p[i * 4 + 3] << 24;
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    for (unsigned i = 0; i < 64; i++) {
        uint32_t f;
        unsigned g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        uint32_t tmp = d;
        d = c;
        c = b;
        b = b + rol(a + f + K[i] + w[g], R[i]);
        a = tmp;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
}

static void md5_update(md5_t *s, const unsigned char *p, size_t n) {
    s->len += n;
    while (n > 0) {
        size_t k = 64 - s->n < n ? 64 - s->n : n;
        memcpy(s->buf + s->n, p, k);
        s->n += k;
        p += k;
        n -= k;
        if (s->n == 64) {
            md5_block(s, s->buf);
            s->n = 0;
        }
    }
}

static void md5_finish(md5_t *s, char hex[33]) {
    uint64_t bits = s->len * 8;
    unsigned char pad[72] = {0x80};
    size_t padn = (s->n < 56 ? 56 : 120) - s->n;
    md5_update(s, pad, padn);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)(bits >> (8 * i));
    md5_update(s, lenb, 8);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        unsigned char byte = (unsigned char)(s->h[i / 4] >> (8 * (i % 4)));
        hex[i * 2] = digits[byte >> 4];
        hex[i * 2 + 1] = digits[byte & 15];
    }
    hex[32] = '\0';
}

void tsr_salesgen_md5_buf(const void *p, size_t n, char hex[33]) {
    md5_t s = {{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}, 0, {0}, 0};
    md5_update(&s, p, n);
    md5_finish(&s, hex);
}

int tsr_salesgen_md5_file(const char *path, char hex[33]) {
    md5_t s = {{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}, 0, {0}, 0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        md5_update(&s, buf, n);
    int rc = ferror(f) ? -1 : 0;
    fclose(f);
    md5_finish(&s, hex);
    return rc;
}
