/* One perfusectl invocation: its command's usage, and its requests to perfused. */
#include "ctl.h"
#include "base/sockpath.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The length of the word at p: up to a space or newline, but a bracketed
 * group ("[--fill PUMP=VOLUME]...") is one word. */
static size_t word_len(const char *p)
{
    int depth = 0;
    size_t n = 0;
    for (; p[n] != '\0' && p[n] != '\n' && (p[n] != ' ' || depth > 0); n++)
        depth += p[n] == '[' ? 1 : p[n] == ']' && depth > 0 ? -1 : 0;
    return n;
}

/* Print text from column col on, wrapped at width; later lines start at indent. */
void ctl_print_wrapped(FILE *out, int col, const char *text, int indent, int width)
{
    const char *p = text;
    bool line_has_word = false;
    while (*p != '\0') {
        if (*p == '\n') {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
            line_has_word = false;
            p++;
            continue;
        }
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t n = word_len(p);
        if (line_has_word && col + 1 + (int)n > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
            line_has_word = false;
        }
        if (line_has_word) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)n, p);
        col += (int)n;
        line_has_word = true;
        p += n;
    }
    fputc('\n', out);
}

/* "usage: perfusectl GLOBAL SYNOPSIS", wrapped under the command's arguments. */
void ctl_print_usage_line(FILE *out, const char *global, const struct ctl_command *cmd)
{
    int col = fprintf(out, "usage: perfusectl %s", global);
    ctl_print_wrapped(out, col, cmd->synopsis, (int)strlen("usage: perfusectl ") + (int)strlen(cmd->name) + 1, 92);
}

/* The running command's synopsis and example, for a usage error. */
int ctl_usage_error(const struct ctl *c)
{
    ctl_print_usage_line(stderr, "", c->cmd);
    fprintf(stderr, "example: %s\n", c->cmd->example);
    return EXIT_USAGE;
}

/* Connect to the daemon, or exit 3 with a message. A read command goes to
 * the read-only socket when the control socket is not open to this user. */
struct ctlclient *ctl_connect(struct ctl *c)
{
    struct ctlclient *cl;
    char err[512];
    int rc = ctlclient_connect(c->socket, &cl, err, sizeof err);
    if (rc == -EACCES && c->cmd->reach == CTL_DAEMON_READ && !c->ro && !c->socket_given) {
        sockpath_default_ro(c->socket, c->robuf, sizeof c->robuf);
        char err2[512];
        if (ctlclient_connect(c->robuf, &cl, err2, sizeof err2) == 0)
            return cl;
    }
    if (rc < 0) {
        fprintf(stderr, "perfusectl: %s\n", err);
        exit(EXIT_UNREACHABLE);
    }
    return cl;
}

/* Send one request; print errors; return the result object (owned) or NULL. */
json_t *ctl_call(struct ctl *c, struct ctlclient *cl, json_t *req, int *exit_code)
{
    json_t *reply = NULL;
    char err[512];
    int rc = ctlclient_call(cl, req, &reply, err, sizeof err);
    json_decref(req);
    if (rc < 0) {
        fprintf(stderr, "perfusectl: %s\n", err);
        *exit_code = EXIT_UNREACHABLE;
        return NULL;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        json_t *e = json_object_get(reply, "error");
        if (c->json) {
            char *text = json_dumps(reply, JSON_INDENT(2));
            printf("%s\n", text ? text : "");
            free(text);
        } else
            fprintf(stderr, "%s\n", json_string_value(json_object_get(e, "message")));
        json_decref(reply);
        *exit_code = EXIT_REFUSED;
        return NULL;
    }
    json_t *res = json_incref(json_object_get(reply, "result"));
    json_decref(reply);
    *exit_code = EXIT_OK;
    return res;
}
