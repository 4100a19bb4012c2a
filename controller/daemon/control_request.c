/* One control request line: JSON object, command, arguments. */
#include "control_request.h"
#include "base/utf8.h"

#include <errno.h>
#include <stdio.h>

int request_parse(const char *line, size_t len, json_t **req_out, const struct ctl_command **cmd_out,
                  json_t **id_out, char *err, size_t errlen)
{
    *req_out = NULL;
    *cmd_out = NULL;
    *id_out = NULL;
    json_error_t jerr;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (req == NULL || !json_is_object(req)) {
        snprintf(err, errlen, "request is not a JSON object: %s",
                 req ? "found another JSON value" : jerr.text);
        json_decref(req);
        return -EPROTO;
    }
    json_t *id = json_object_get(req, "id");
    if (id != NULL && !json_is_integer(id) && !json_is_string(id) && !json_is_null(id)) {
        snprintf(err, errlen, "\"id\" must be a number or a string");
        json_decref(req);
        return -EPROTO;
    }
    *id_out = json_incref(id);
    json_t *name_j = json_object_get(req, "cmd");
    const char *name = json_string_value(name_j);
    const struct ctl_command *cmd = name ? command_find(name) : NULL;
    if (cmd == NULL) {
        snprintf(err, errlen, "%s '%.*s' (commands: %s)", name ? "unknown command" : "missing \"cmd\"",
                 name ? (int)utf8_cut(name, 64) : 0, name ? name : "", command_names());
        json_decref(req);
        return name ? -ENOSYS : -EPROTO;
    }
    int rc = command_check_args(cmd, req, err, errlen);
    if (rc < 0) {
        json_decref(req);
        return rc;
    }
    *req_out = req;
    *cmd_out = cmd;
    return 0;
}
