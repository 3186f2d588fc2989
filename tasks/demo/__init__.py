"""Demo returns and registries: the only code that knows the article's story.

Imported only by the CLI's demo command, the tests and the benchmarks."""
