"""Kafka client setup: configs (`config`), topic creation (`topics`), a producer whose
sends return futures (`producer`) and the at-least-once consumer loop (`consumer_loop`)."""
