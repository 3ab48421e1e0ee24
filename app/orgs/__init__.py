"""Organizations: the tenants. Every read and write is scoped to one."""
