// Being built: the GRDB engine.
