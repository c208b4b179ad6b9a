/* run.c's float32 forward pass, written again in C from llama2.c's definitions, so the tests can
 * check the runtime's float32 engine against an implementation that shares no code with it.
 * It reads llama2.c checkpoints of version 0 (legacy), 1 (fp32) and 2 (Q8_0, whose weights it
 * turns back into float32 first, as the runtime does), and writes to standard output:
 *
 *   forward_reference CHECKPOINT logits TOKEN...   the logits at each position, raw float32
 *   forward_reference CHECKPOINT greedy STEPS      the greedy tokens after BOS, one per line
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} Config;

typedef struct { /* every matrix row-major, as (out, in) */
    float *token_embedding, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
} Weights;

static unsigned char *file_bytes;
static long file_size, at;

static void need(long n) {
    if (at + n > file_size) { fprintf(stderr, "checkpoint too short\n"); exit(1); }
}

static float *take_f32(long count) { /* a copy: the file's floats may be unaligned */
    need(4 * count);
    float *out = malloc(4 * count);
    memcpy(out, file_bytes + at, 4 * count);
    at += 4 * count;
    return out;
}

/* `count` matrices of `rows` x `cols`: Q8_0 int8 values then one float scale per group. */
static float *take_q8(long count, long rows, long cols, int group) {
    long n = rows * cols;
    float *out = malloc(4 * count * n);
    for (long m = 0; m < count; m++) {
        need(n + 4 * (n / group));
        const int8_t *q = (const int8_t *)(file_bytes + at);
        float scale;
        for (long i = 0; i < n; i++) {
            memcpy(&scale, file_bytes + at + n + 4 * (i / group), 4);
            out[m * n + i] = q[i] * scale;
        }
        at += n + 4 * (n / group);
    }
    return out;
}

static void read_checkpoint(const char *path, Config *c, Weights *w) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    file_size = ftell(f);
    fseek(f, 0, SEEK_SET);
    file_bytes = malloc(file_size);
    if (fread(file_bytes, 1, file_size, f) != (size_t)file_size) { perror(path); exit(1); }
    fclose(f);
    uint32_t magic;
    memcpy(&magic, file_bytes, 4);
    int version = 0, shared, group = 0;
    if (magic == 0x616b3432) {
        memcpy(&version, file_bytes + 4, 4);
        memcpy(c, file_bytes + 8, sizeof(Config));
        shared = file_bytes[8 + sizeof(Config)];
        if (version == 2) memcpy(&group, file_bytes + 9 + sizeof(Config), 4);
        at = 256;
    } else {
        memcpy(c, file_bytes, sizeof(Config));
        shared = c->vocab_size > 0;
        c->vocab_size = abs(c->vocab_size);
        at = sizeof(Config);
    }
    long d = c->dim, h = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
    long kv = (long)c->n_kv_heads * (d / c->n_heads);
    if (version == 0) {
        w->token_embedding = take_f32(V * d);
        w->rms_att = take_f32(L * d);
        w->wq = take_f32(L * d * d);
        w->wk = take_f32(L * kv * d);
        w->wv = take_f32(L * kv * d);
        w->wo = take_f32(L * d * d);
        w->rms_ffn = take_f32(L * d);
        w->w1 = take_f32(L * h * d);
        w->w2 = take_f32(L * d * h);
        w->w3 = take_f32(L * h * d);
        w->rms_final = take_f32(d);
        at += 4L * c->seq_len * (d / c->n_heads); /* the RoPE tables, which run.c skips */
        w->wcls = shared ? w->token_embedding : take_f32(V * d);
        return;
    }
    w->rms_att = take_f32(L * d);
    w->rms_ffn = take_f32(L * d);
    w->rms_final = take_f32(d);
#define MATRIX(count, rows, cols) (version == 1 ? take_f32((count) * (rows) * (cols)) : take_q8(count, rows, cols, group))
    w->token_embedding = MATRIX(1, V, d);
    w->wq = MATRIX(L, d, d);
    w->wk = MATRIX(L, kv, d);
    w->wv = MATRIX(L, kv, d);
    w->wo = MATRIX(L, d, d);
    w->w1 = MATRIX(L, h, d);
    w->w2 = MATRIX(L, d, h);
    w->w3 = MATRIX(L, h, d);
    w->wcls = shared ? w->token_embedding : MATRIX(1, V, d);
#undef MATRIX
}

static void rmsnorm(float *out, const float *x, const float *weight, int n) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    ss = 1.0f / sqrtf(ss / n + 1e-5f);
    for (int i = 0; i < n; i++) out[i] = weight[i] * (ss * x[i]);
}

static void matmul(float *out, const float *x, const float *w, int n, int d) { /* (d,n) @ (n,) */
    for (int i = 0; i < d; i++) {
        float sum = 0.0f;
        for (int j = 0; j < n; j++) sum += w[(long)i * n + j] * x[j];
        out[i] = sum;
    }
}

static void softmax(float *x, int n) {
    float max = x[0], sum = 0.0f;
    for (int i = 1; i < n; i++) if (x[i] > max) max = x[i];
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - max); sum += x[i]; }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

typedef struct {
    float *x, *xb, *xb2, *hb, *hb2, *q, *att, *logits, *key_cache, *value_cache;
} State;

static void make_state(const Config *c, State *s) {
    long kv = (long)c->n_kv_heads * (c->dim / c->n_heads);
    s->x = calloc(c->dim, 4); s->xb = calloc(c->dim, 4); s->xb2 = calloc(c->dim, 4);
    s->hb = calloc(c->hidden_dim, 4); s->hb2 = calloc(c->hidden_dim, 4); s->q = calloc(c->dim, 4);
    s->att = calloc((long)c->n_heads * c->seq_len, 4); s->logits = calloc(c->vocab_size, 4);
    s->key_cache = calloc((long)c->n_layers * c->seq_len * kv, 4);
    s->value_cache = calloc((long)c->n_layers * c->seq_len * kv, 4);
}

static float *forward(const Config *c, const Weights *w, State *s, int token, int pos) {
    int dim = c->dim, hidden = c->hidden_dim, head_size = dim / c->n_heads;
    int kv_dim = c->n_kv_heads * head_size, kv_mul = c->n_heads / c->n_kv_heads;
    memcpy(s->x, w->token_embedding + (long)token * dim, 4 * dim);
    for (long l = 0; l < c->n_layers; l++) {
        rmsnorm(s->xb, s->x, w->rms_att + l * dim, dim);
        float *k = s->key_cache + (l * c->seq_len + pos) * kv_dim;
        float *v = s->value_cache + (l * c->seq_len + pos) * kv_dim;
        matmul(s->q, s->xb, w->wq + l * dim * dim, dim, dim);
        matmul(k, s->xb, w->wk + l * kv_dim * dim, dim, kv_dim);
        matmul(v, s->xb, w->wv + l * kv_dim * dim, dim, kv_dim);
        for (int i = 0; i < dim; i += 2) { /* RoPE: each pair turned by pos * frequency */
            float freq = 1.0f / powf(10000.0f, (i % head_size) / (float)head_size);
            float angle = pos * freq, cr = cosf(angle), ci = sinf(angle);
            for (int which = 0; which < (i < kv_dim ? 2 : 1); which++) {
                float *vec = which == 0 ? s->q : k;
                float a = vec[i], b = vec[i + 1];
                vec[i] = a * cr - b * ci;
                vec[i + 1] = a * ci + b * cr;
            }
        }
        for (int h = 0; h < c->n_heads; h++) {
            const float *q = s->q + h * head_size;
            float *att = s->att + (long)h * c->seq_len;
            for (int t = 0; t <= pos; t++) {
                const float *kt = s->key_cache + (l * c->seq_len + t) * kv_dim + (h / kv_mul) * head_size;
                float score = 0.0f;
                for (int i = 0; i < head_size; i++) score += q[i] * kt[i];
                att[t] = score / sqrtf(head_size);
            }
            softmax(att, pos + 1);
            float *out = s->xb + h * head_size;
            memset(out, 0, 4 * head_size);
            for (int t = 0; t <= pos; t++) {
                const float *vt = s->value_cache + (l * c->seq_len + t) * kv_dim + (h / kv_mul) * head_size;
                for (int i = 0; i < head_size; i++) out[i] += att[t] * vt[i];
            }
        }
        matmul(s->xb2, s->xb, w->wo + l * dim * dim, dim, dim);
        for (int i = 0; i < dim; i++) s->x[i] += s->xb2[i];
        rmsnorm(s->xb, s->x, w->rms_ffn + l * dim, dim);
        matmul(s->hb, s->xb, w->w1 + l * hidden * dim, dim, hidden);
        matmul(s->hb2, s->xb, w->w3 + l * hidden * dim, dim, hidden);
        for (int i = 0; i < hidden; i++) { /* SwiGLU: silu(w1 x) * w3 x */
            float a = s->hb[i];
            s->hb[i] = a * (1.0f / (1.0f + expf(-a))) * s->hb2[i];
        }
        matmul(s->xb, s->hb, w->w2 + l * dim * hidden, hidden, dim);
        for (int i = 0; i < dim; i++) s->x[i] += s->xb[i];
    }
    rmsnorm(s->x, s->x, w->rms_final, dim);
    matmul(s->logits, s->x, w->wcls, dim, c->vocab_size);
    return s->logits;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: forward_reference CHECKPOINT logits|greedy ...\n"); return 2; }
    Config c;
    Weights w;
    State s;
    read_checkpoint(argv[1], &c, &w);
    make_state(&c, &s);
    if (strcmp(argv[2], "logits") == 0) {
        for (int pos = 0; pos + 3 < argc && pos < c.seq_len; pos++) {
            fwrite(forward(&c, &w, &s, atoi(argv[pos + 3]), pos), 4, c.vocab_size, stdout);
        }
        return 0;
    }
    int steps = atoi(argv[3]), token = 1; /* BOS */
    for (int pos = 0; pos < steps && pos < c.seq_len; pos++) {
        float *logits = forward(&c, &w, &s, token, pos);
        int best = 0;
        for (int i = 1; i < c.vocab_size; i++) if (logits[i] > logits[best]) best = i;
        if (best == 1) break; /* BOS ends the story, as run.c's loop does */
        printf("%d\n", best);
        token = best;
    }
    return 0;
}
