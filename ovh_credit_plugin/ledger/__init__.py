"""The ledger: schema, exact column types, transactions and migrations."""
