import SandboxCommands

await SandboxerCommand.runCLI()
