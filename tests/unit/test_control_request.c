/* The control request parser, against a small table of its own and the daemon's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "daemon/commands.h"
#include "daemon/control_request.h"

/* A handler the parser never calls. */
static int never(struct ctl_client *cl, json_t *req, json_t *res, char *err, size_t len)
{
    (void)cl; (void)req; (void)res; (void)err; (void)len;
    fail();
    return 0;
}

static const struct ctl_command fake[] = {
    { .name = "ping", .exec = never, .args = "", .read_only = true },
    { .name = "move", .exec = never, .args = "to=s! speed=n force=b" },
    { .name = "clear", .exec = never, .args = "alarm=a!" },
    { .name = "load", .exec = never, .args = "files=l" },
};
static const struct ctl_table table = { .v = fake, .n = sizeof fake / sizeof fake[0] };

struct parsed {
    int rc;
    json_t *req, *id;
    const struct ctl_command *cmd;
    char err[1024];
};

/* Parse text against the fake table. */
static struct parsed parse(const char *text)
{
    struct parsed p = { 0 };
    p.rc = request_parse(&table, text, strlen(text), &p.req, &p.cmd, &p.id, p.err, sizeof p.err);
    if (p.rc < 0) {
        assert_null(p.req);
        assert_null(p.cmd);
        assert_true(p.err[0] != '\0');
    }
    return p;
}

static void done(struct parsed *p)
{
    json_decref(p->req);
    json_decref(p->id);
}

/* A command of the table with well-typed arguments is handed over with its request and id. */
static void test_a_known_command_with_good_arguments_is_accepted(void **state)
{
    (void)state;
    struct parsed p = parse("{\"cmd\":\"move\",\"id\":7,\"to\":\"A\",\"speed\":2.5,\"force\":true}");
    assert_int_equal(p.rc, 0);
    assert_ptr_equal(p.cmd, &fake[1]);
    assert_string_equal(json_string_value(json_object_get(p.req, "to")), "A");
    assert_int_equal(json_integer_value(p.id), 7);
    done(&p);
    p = parse("{\"cmd\":\"clear\",\"alarm\":\"all\"}");
    assert_int_equal(p.rc, 0);
    assert_null(p.id);
    done(&p);
    p = parse("{\"cmd\":\"load\",\"files\":[\"a\",\"b\"]}");
    assert_int_equal(p.rc, 0);
    done(&p);
}

/* An unknown command is refused with the names of the table it was parsed against, in order. */
static void test_an_unknown_command_lists_the_tables_commands(void **state)
{
    (void)state;
    struct parsed p = parse("{\"cmd\":\"jump\",\"id\":\"x1\"}");
    assert_int_equal(p.rc, -ENOSYS);
    assert_string_equal(p.err, "unknown command 'jump' (commands: ping, move, clear, load)");
    assert_string_equal(json_string_value(p.id), "x1");     /* the error reply can name it */
    done(&p);
}

/* A request without "cmd" is not a request; its id is still returned. */
static void test_a_missing_cmd_is_a_bad_request(void **state)
{
    (void)state;
    struct parsed p = parse("{\"id\":3}");
    assert_int_equal(p.rc, -EPROTO);
    assert_non_null(strstr(p.err, "missing \"cmd\""));
    assert_non_null(strstr(p.err, "ping, move, clear, load"));
    assert_int_equal(json_integer_value(p.id), 3);
    done(&p);
    p = parse("{\"cmd\":5}");
    assert_int_equal(p.rc, -EPROTO);
    done(&p);
}

/* Not JSON, not an object, a duplicate key or an id of the wrong type: a bad request. */
static void test_what_is_not_a_request_object_is_a_bad_request(void **state)
{
    (void)state;
    const char *bad[] = { "{", "[1,2]", "\"ping\"", "", "{\"cmd\":\"ping\",\"cmd\":\"move\"}",
                          "{\"cmd\":\"ping\",\"id\":[1]}", "{\"cmd\":\"ping\",\"id\":1.5}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct parsed p = parse(bad[i]);
        assert_int_equal(p.rc, -EPROTO);
        assert_null(p.id);
        done(&p);
    }
    struct parsed p = parse("[1]");
    assert_string_equal(p.err, "request is not a JSON object: found another JSON value");
    done(&p);
}

/* Each argument type is checked, and the message says what was expected. */
static void test_an_argument_of_the_wrong_type_is_named(void **state)
{
    (void)state;
    static const struct { const char *req, *err; } cases[] = {
        { "{\"cmd\":\"move\",\"to\":5}", "argument 'to' of 'move' must be a string" },
        { "{\"cmd\":\"move\",\"to\":\"A\",\"speed\":\"fast\"}", "argument 'speed' of 'move' must be a number" },
        { "{\"cmd\":\"move\",\"to\":\"A\",\"force\":1}", "argument 'force' of 'move' must be true or false" },
        { "{\"cmd\":\"load\",\"files\":[\"a\",2]}", "argument 'files' of 'load' must be a list of strings" },
        { "{\"cmd\":\"load\",\"files\":\"a\"}", "argument 'files' of 'load' must be a list of strings" },
        { "{\"cmd\":\"clear\",\"alarm\":0}", "argument 'alarm' of 'clear' must be an alarm id or \"all\"" },
        { "{\"cmd\":\"clear\",\"alarm\":\"some\"}", "argument 'alarm' of 'clear' must be an alarm id or \"all\"" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct parsed p = parse(cases[i].req);
        assert_int_equal(p.rc, -EINVAL);
        assert_string_equal(p.err, cases[i].err);
        done(&p);
    }
}

/* A required argument that is missing, or one the command does not take, is refused. */
static void test_missing_and_unknown_arguments_are_refused(void **state)
{
    (void)state;
    struct parsed p = parse("{\"cmd\":\"move\",\"speed\":1}");
    assert_int_equal(p.rc, -EINVAL);
    assert_string_equal(p.err, "'move' needs the argument 'to' (arguments: to=s! speed=n force=b)");
    done(&p);
    p = parse("{\"cmd\":\"ping\",\"to\":\"A\"}");
    assert_int_equal(p.rc, -EINVAL);
    assert_string_equal(p.err, "'ping' takes no argument 'to'");
    done(&p);
    p = parse("{\"cmd\":\"move\",\"to\":\"A\",\"t\":1}");      /* a prefix of an argument is not it */
    assert_int_equal(p.rc, -EINVAL);
    assert_string_equal(p.err, "'move' takes no argument 't' (arguments: to=s! speed=n force=b)");
    done(&p);
}

/* The names list is cut to its buffer, never past it. */
static void test_the_names_list_is_cut_to_fit(void **state)
{
    (void)state;
    char buf[12];
    memset(buf, 'x', sizeof buf);
    ctl_table_names(&table, buf, 8);
    assert_string_equal(buf, "ping, m");
    assert_int_equal(buf[8], 'x');
    ctl_table_names(&table, buf, sizeof buf);
    assert_string_equal(buf, "ping, move,");
}

/* The daemon's table: every command is found by its name, has a handler and
 * a well-formed argument list, and an unknown command's message lists them all. */
static void test_the_daemons_table_is_well_formed(void **state)
{
    (void)state;
    const struct ctl_table *t = commands_table();
    assert_true(t->n >= 13);
    char err[1024];
    json_t *req, *id;
    const struct ctl_command *cmd;
    const char *line = "{\"cmd\":\"nope\"}";
    assert_int_equal(request_parse(t, line, strlen(line), &req, &cmd, &id, err, sizeof err), -ENOSYS);
    for (size_t i = 0; i < t->n; i++) {
        const struct ctl_command *c = &t->v[i];
        assert_ptr_equal(ctl_table_find(t, c->name), c);
        assert_non_null(c->exec);
        assert_non_null(strstr(err, c->name));
        for (const char *p = c->args; *p;) {
            const char *eq = strchr(p, '=');
            assert_non_null(eq);
            assert_non_null(strchr("snbla", eq[1]));
            assert_true(eq[2] == '\0' || eq[2] == ' ' || eq[2] == '!');
            p = strchr(eq, ' ');
            if (p == NULL)
                break;
            p++;
        }
    }
    assert_null(ctl_table_find(t, "nope"));
    assert_null(ctl_table_find(t, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_known_command_with_good_arguments_is_accepted),
        cmocka_unit_test(test_an_unknown_command_lists_the_tables_commands),
        cmocka_unit_test(test_a_missing_cmd_is_a_bad_request),
        cmocka_unit_test(test_what_is_not_a_request_object_is_a_bad_request),
        cmocka_unit_test(test_an_argument_of_the_wrong_type_is_named),
        cmocka_unit_test(test_missing_and_unknown_arguments_are_refused),
        cmocka_unit_test(test_the_names_list_is_cut_to_fit),
        cmocka_unit_test(test_the_daemons_table_is_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
