#pragma once
int sbx_agent_placeholder(void);
