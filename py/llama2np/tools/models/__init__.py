"""Model files in and out: fetch and verify, validate, read train.py's .pt, write llama2.c
checkpoints, train and export tokenizers, and make synthetic models of llama2.c's sizes."""
