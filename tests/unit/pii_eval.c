/* pii_eval: precision and recall of the PII detector on the labeled sets in
 * tests/data/pii (label, entity, text, value). A positive counts as found
 * only when a match of the right entity covers exactly the value; any
 * other match is a false positive. Fails below 0.95 precision or recall
 * overall. Usage: pii_eval [-v] [FILE...] (default: the dev and held-out
 * sets). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/pii.h"

#ifndef KT_PII_DATADIR
#define KT_PII_DATADIR "tests/data/pii"
#endif

struct tally {
    unsigned tp[KT_PII_NENTITIES], fp[KT_PII_NENTITIES], fn[KT_PII_NENTITIES];
};

static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') {
            *w++ = '\n';
            r++;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static int eval_file(const char *path, struct tally *t, int verbose)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    char line[4096];
    unsigned lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *label = line, *ent = strchr(label, '\t');
        char *text = ent ? strchr(ent + 1, '\t') : NULL;
        char *value = text ? strchr(text + 1, '\t') : NULL;
        if (value == NULL) {
            fprintf(stderr, "%s:%u: want 4 tab-separated columns\n", path, lineno);
            fclose(f);
            return -1;
        }
        *ent++ = *text++ = *value++ = '\0';
        enum kt_pii_entity e;
        if (kt_pii_entity_parse(ent, &e) != 0) {
            fprintf(stderr, "%s:%u: unknown entity %s\n", path, lineno, ent);
            fclose(f);
            return -1;
        }
        unescape(text);
        int pos = strcmp(label, "pos") == 0;
        size_t vstart = 0, vend = 0;
        if (pos) {
            char *v = strstr(text, value);
            if (v == NULL || *value == '\0') {
                fprintf(stderr, "%s:%u: value not in text\n", path, lineno);
                fclose(f);
                return -1;
            }
            vstart = (size_t)(v - text);
            vend = vstart + strlen(value);
        }
        struct kt_pii_match m[16];
        size_t n = 0;
        kt_pii_scan(text, strlen(text), KT_PII_ALL, m, 16, &n);
        if (n > 16)
            n = 16;
        int hit = 0;
        for (size_t k = 0; k < n; k++) {
            if (pos && !hit && m[k].entity == e && m[k].start == vstart && m[k].end == vend) {
                hit = 1;
                continue;
            }
            t->fp[m[k].entity]++;
            if (verbose)
                printf("FP %s:%u %s: '%.*s' in: %s\n", path, lineno,
                       kt_pii_entity_name(m[k].entity), (int)(m[k].end - m[k].start),
                       text + m[k].start, text);
        }
        if (pos) {
            if (hit) {
                t->tp[e]++;
            } else {
                t->fn[e]++;
                if (verbose)
                    printf("FN %s:%u %s: '%s' in: %s\n", path, lineno, ent, value, text);
            }
        }
    }
    fclose(f);
    return 0;
}

static double ratio(unsigned a, unsigned b)
{
    return b ? (double)a / b : 1.0;
}

static void report(const char *title, const struct tally *t, double *p, double *r)
{
    unsigned tp = 0, fp = 0, fn = 0;
    printf("%s\n%-12s %5s %5s %5s %9s %9s\n", title, "entity", "tp", "fp", "fn", "precision", "recall");
    for (unsigned e = 0; e < KT_PII_NENTITIES; e++) {
        printf("%-12s %5u %5u %5u %9.3f %9.3f\n", kt_pii_entity_name((enum kt_pii_entity)e),
               t->tp[e], t->fp[e], t->fn[e], ratio(t->tp[e], t->tp[e] + t->fp[e]),
               ratio(t->tp[e], t->tp[e] + t->fn[e]));
        tp += t->tp[e];
        fp += t->fp[e];
        fn += t->fn[e];
    }
    *p = ratio(tp, tp + fp);
    *r = ratio(tp, tp + fn);
    printf("%-12s %5u %5u %5u %9.3f %9.3f\n\n", "overall", tp, fp, fn, *p, *r);
}

int main(int argc, char **argv)
{
    int verbose = 0, argi = 1;
    if (argi < argc && strcmp(argv[argi], "-v") == 0) {
        verbose = 1;
        argi++;
    }
    const char *defaults[] = { KT_PII_DATADIR "/labeled.tsv", KT_PII_DATADIR "/heldout.tsv" };
    const char **files = argi < argc ? (const char **)argv + argi : defaults;
    int nfiles = argi < argc ? argc - argi : 2;
    struct tally all;
    memset(&all, 0, sizeof all);
    for (int k = 0; k < nfiles; k++) {
        struct tally t;
        memset(&t, 0, sizeof t);
        if (eval_file(files[k], &t, verbose) != 0)
            return 2;
        double p, r;
        report(files[k], &t, &p, &r);
        for (unsigned e = 0; e < KT_PII_NENTITIES; e++) {
            all.tp[e] += t.tp[e];
            all.fp[e] += t.fp[e];
            all.fn[e] += t.fn[e];
        }
    }
    double p, r;
    report("all files", &all, &p, &r);
    if (p < 0.95 || r < 0.95) {
        printf("FAIL: overall precision %.3f, recall %.3f (need >= 0.95)\n", p, r);
        return 1;
    }
    return 0;
}
