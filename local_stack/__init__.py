"""The local stack: everything `make run` and `make serve` start on one machine, with no Azure."""
