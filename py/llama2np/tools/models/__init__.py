"""Model files in and out: fetch and verify, validate, read train.py's .pt, write llama2.c
checkpoints, train and export tokenizers."""
