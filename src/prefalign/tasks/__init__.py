"""Built-in tasks, each with its one verifier: `addition` (the embedded demo's task)."""
