"""Hard-negative methods: llm (generated), bm25, ce (cross-encoder rescored), dense (mined)."""
