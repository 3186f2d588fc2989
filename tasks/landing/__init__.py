"""How files arrive: the landing writer, the object-store scan and staging, intake tokens."""
