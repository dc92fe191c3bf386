"""Shared library of the fraud detection platform.

Owns what all three services need, once: settings from the environment
(`settings`), message schemas and validation (`schemas`), money and currency
(`money`), Redis key names (`keys`), Kafka client setup (`kafka`), JSON logging
(`logging_setup`), health reporting (`health`) and the gunicorn hooks that run
background work in a worker (`gunicorn_hooks`). Services import it; it imports no
service.
"""
