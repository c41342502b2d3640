"""Storage: peewee models, the database runner, encryption at rest, repositories, migrations."""
