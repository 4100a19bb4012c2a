/* One control request line: JSON object, command of the table, arguments. */
#include "control_request.h"
#include "base/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The command of t called name, or NULL. */
const struct ctl_command *ctl_table_find(const struct ctl_table *t, const char *name)
{
    for (size_t i = 0; name != NULL && i < t->n; i++)
        if (strcmp(t->v[i].name, name) == 0)
            return &t->v[i];
    return NULL;
}

/* Comma-separated names of t's commands. */
void ctl_table_names(const struct ctl_table *t, char *buf, size_t len)
{
    size_t k = 0;
    if (len > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < t->n && k < len; i++) {
        int n = snprintf(buf + k, len - k, "%s%s", i ? ", " : "", t->v[i].name);
        if (n < 0)
            break;
        k += (size_t)n;
    }
}

int request_parse(const struct ctl_table *t, const char *line, size_t len, json_t **req_out,
                  const struct ctl_command **cmd_out, json_t **id_out, char *err, size_t errlen)
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
    const struct ctl_command *cmd = ctl_table_find(t, name);
    if (cmd == NULL) {
        char names[512];
        ctl_table_names(t, names, sizeof names);
        snprintf(err, errlen, "%s '%.*s' (commands: %s)", name ? "unknown command" : "missing \"cmd\"",
                 name ? (int)utf8_cut(name, 64) : 0, name ? name : "", names);
        json_decref(req);
        return name ? -ENOSYS : -EPROTO;
    }
    int rc = request_check_args(cmd, req, err, errlen);
    if (rc < 0) {
        json_decref(req);
        return rc;
    }
    *req_out = req;
    *cmd_out = cmd;
    return 0;
}

/* Whether v has argument type t. */
static bool arg_type_ok(char t, json_t *v)
{
    switch (t) {
    case 's': return json_is_string(v);
    case 'n': return json_is_number(v);
    case 'b': return json_is_boolean(v);
    case 'l': {          /* a list of strings */
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            if (!json_is_string(e))
                return false;
        return json_is_array(v);
    }
    case 'a': return (json_is_integer(v) && json_integer_value(v) > 0) ||
                     (json_is_string(v) && strcmp(json_string_value(v), "all") == 0);
    }
    return false;
}

/* The type letter of argument key in args ("name=T[!] ..."), with *required; 0 if absent. */
static char arg_spec(const char *args, const char *key, bool *required)
{
    size_t klen = strlen(key);
    for (const char *p = args; *p;) {
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            break;
        if ((size_t)(eq - p) == klen && strncmp(p, key, klen) == 0) {
            *required = eq[2] == '!';
            return eq[1];
        }
        p = strchr(eq, ' ');
        if (p == NULL)
            break;
        while (*p == ' ')
            p++;
    }
    return 0;
}

/* Check a request's members against the command's argument list. */
int request_check_args(const struct ctl_command *cmd, json_t *req, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    bool required;
    json_object_foreach(req, key, v) {
        if (strcmp(key, "cmd") == 0 || strcmp(key, "id") == 0)
            continue;
        char t = arg_spec(cmd->args, key, &required);
        if (t == 0) {
            snprintf(err, errlen, "'%s' takes no argument '%.*s'%s%s%s", cmd->name, (int)utf8_cut(key, 40), key,
                     cmd->args[0] ? " (arguments: " : "", cmd->args, cmd->args[0] ? ")" : "");
            return -EINVAL;
        }
        if (!arg_type_ok(t, v)) {
            snprintf(err, errlen, "argument '%s' of '%s' must be %s", key, cmd->name,
                     t == 's' ? "a string" : t == 'n' ? "a number" : t == 'b' ? "true or false"
                     : t == 'l' ? "a list of strings"
                     : "an alarm id or \"all\"");
            return -EINVAL;
        }
    }
    /* Every required argument is there. */
    for (const char *p = cmd->args; *p;) {
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            break;
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(eq - p), p);
        if (eq[2] == '!' && json_object_get(req, name) == NULL) {
            snprintf(err, errlen, "'%s' needs the argument '%s' (arguments: %s)", cmd->name, name, cmd->args);
            return -EINVAL;
        }
        p = strchr(eq, ' ');
        if (p == NULL)
            break;
        while (*p == ' ')
            p++;
    }
    return 0;
}
