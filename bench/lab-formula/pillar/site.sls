site: bench
