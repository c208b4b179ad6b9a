"""A deliberately simple forward pass for the tests: run.c's loops, one head at a time, float64.

No fusion, no batching, no cache tricks: each step recomputes attention from plain per-layer
key/value lists. Slow and obvious, so that the fast model can be checked against it.
"""

import math

import numpy as np


class ReferenceModel:
    def __init__(self, checkpoint):
        self.c = checkpoint.config
        self.w = {k: v.astype(np.float64) for k, v in vars(checkpoint.weights).items()}
        self.keys = [[] for _ in range(self.c.n_layers)]
        self.values = [[] for _ in range(self.c.n_layers)]

    def rmsnorm(self, x, weight):
        return weight * (x / math.sqrt(float(np.mean(x * x)) + 1e-5))

    def rope(self, vec, pos):
        out = vec.copy()
        hs = self.c.head_size
        for i in range(0, len(vec), 2):
            # run.c computes the angle in float32; at position 500 that alone moves it by ~1e-5
            freq = np.float32(1.0) / np.float32(10000.0) ** (np.float32(i % hs) / np.float32(hs))
            angle = float(np.float32(pos) * freq)
            out[i] = vec[i] * math.cos(angle) - vec[i + 1] * math.sin(angle)
            out[i + 1] = vec[i] * math.sin(angle) + vec[i + 1] * math.cos(angle)
        return out

    def step(self, token, pos):
        c, w = self.c, self.w
        hs = c.head_size
        x = w["token_embedding"][token].copy()
        for layer in range(c.n_layers):
            xb = self.rmsnorm(x, w["rms_att"][layer])
            q = self.rope(w["wq"][layer] @ xb, pos)
            k = self.rope(w["wk"][layer] @ xb, pos)
            v = w["wv"][layer] @ xb
            self.keys[layer].append(k)
            self.values[layer].append(v)
            heads = []
            for h in range(c.n_heads):
                kv = h // (c.n_heads // c.n_kv_heads)
                qh = q[h * hs : (h + 1) * hs]
                scores = np.array(
                    [qh @ key[kv * hs : (kv + 1) * hs] / math.sqrt(hs) for key in self.keys[layer]]
                )
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                heads.append(sum(a * val[kv * hs : (kv + 1) * hs]
                                 for a, val in zip(weights, self.values[layer], strict=True)))
            x = x + w["wo"][layer] @ np.concatenate(heads)
            xb = self.rmsnorm(x, w["rms_ffn"][layer])
            h1 = w["w1"][layer] @ xb
            h3 = w["w3"][layer] @ xb
            x = x + w["w2"][layer] @ (h1 / (1.0 + np.exp(-h1)) * h3)
        return w["wcls"] @ self.rmsnorm(x, w["rms_final"])
