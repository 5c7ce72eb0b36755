// sandboxer-agent: being built.
