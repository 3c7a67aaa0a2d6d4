"""The always-on media host: transports, pipelines and engines for the real-time audio."""
