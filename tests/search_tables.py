"""Hand-built next-token tables shared by the in-graph and host-side search tests."""

import numpy as np

PAD, START, END, A, B, C = 0, 2, 3, 4, 5, 6
VOCAB = 7


def trap_table():
    """From START: A 0.6, B 0.4; after A: C 0.4, END 0.3, B 0.3; after B: END 0.9; after C: END 1.

    Greedy takes A, C, END (0.6 * 0.4 * 1.0 = 0.24); the best sequence is B END (0.4 * 0.9 = 0.36).
    """
    t = np.zeros((VOCAB, VOCAB))
    t[START, [A, B]] = [0.6, 0.4]
    t[A, [END, B, C]] = [0.3, 0.3, 0.4]
    t[B, [END, C]] = [0.9, 0.1]
    t[C, END] = 1.0
    t[END, END] = 1.0
    t[PAD, END] = 1.0
    return t
