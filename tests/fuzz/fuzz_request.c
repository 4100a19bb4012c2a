/*
 * libFuzzer target for the control protocol's request parser: any bytes as
 * one request line. It must never crash, leak or read out of bounds, must
 * accept only a known command with well-typed arguments, and must explain
 * every refusal.
 *
 *   make fuzz                      (FUZZ_SECONDS=N to choose how long)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/commands.h"
#include "daemon/control_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req, *id;
    const struct ctl_command *cmd;
    char err[1024] = "";
    int rc = request_parse(commands_table(), (const char *)data, size, &req, &cmd, &id, err, sizeof err);
    if (rc == 0) {
        if (req == NULL || cmd == NULL || !json_is_object(req) ||
            strcmp(json_string_value(json_object_get(req, "cmd")), cmd->name) != 0)
            abort();
        /* What passed the parser must pass the argument check again, unchanged. */
        if (request_check_args(cmd, req, err, sizeof err) != 0)
            abort();
        json_decref(req);
    } else if (err[0] == '\0' || req != NULL || cmd != NULL) {
        abort();
    }
    json_decref(id);
    return 0;
}
