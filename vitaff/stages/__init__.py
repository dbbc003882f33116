"""One command-line entry point per Snakemake rule: ``python -m vitaff.stages.<rule>``.

Each takes its rule's params as one JSON argument (``--params``) plus input/output paths, so the
rules stay thin and every stage can also be run by hand.
"""
