"""`python -m rbac_advisor` runs the command line."""

from rbac_advisor.cli import main

main()
