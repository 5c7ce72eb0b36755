#include "CSandboxAgent.h"
int sbx_agent_placeholder(void) { return 0; }
