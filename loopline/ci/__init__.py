"""`loopline ci pr|main`: CI/CD for ML over the other layers. A pull request trains each spec on
a seeded sample and gates it against the champion; a merge runs the full pipeline into the
declared rollout. The report goes to stdout, a file, the step summary and one sticky comment.
It sits above the backends (it drives the local runner) and below the CLI."""
