"""Who may do what: the acting principal, namespaces and their grants, and the one policy every door asks."""
