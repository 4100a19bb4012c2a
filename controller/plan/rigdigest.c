/* The digest of a rig without its bus endpoints, for the run journal. */
#include "rigdigest.h"
#include "base/sha256.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define DIGEST_MAX_DEPTH 32     /* a rig file nests 4 levels; deeper is not a rig */

/* Whether key, in a mapping at depth, says where a bus is reached. Depth 2 is
 * an entry of the top-level 'buses' list (root map 0, list 1, entry 2). */
static bool is_endpoint(const char *top, int depth, const char *key)
{
    return top != NULL && strcmp(top, "buses") == 0 && depth == 2 &&
           (strcmp(key, "port") == 0 || strcmp(key, "host") == 0);
}

/* Write node n to f in a form where only the data counts: scalars with their
 * length, so that no text can pose as structure. top is the top-level key n
 * is under (NULL at the root). Returns false if the tree is too deep. */
static bool put_node(FILE *f, yaml_document_t *doc, yaml_node_t *n, const char *top, int depth)
{
    if (n == NULL || depth > DIGEST_MAX_DEPTH)
        return n == NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        fprintf(f, "s%zu:", n->data.scalar.length);
        fwrite(n->data.scalar.value, 1, n->data.scalar.length, f);
        return true;
    case YAML_SEQUENCE_NODE:
        fputc('[', f);
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++)
            if (!put_node(f, doc, yaml_document_get_node(doc, *i), top, depth + 1))
                return false;
        fputc(']', f);
        return true;
    case YAML_MAPPING_NODE:
        fputc('{', f);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            const char *key = k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
            if (is_endpoint(top, depth, key))
                continue;
            if (!put_node(f, doc, k, top, depth + 1) ||
                !put_node(f, doc, yaml_document_get_node(doc, p->value), depth == 0 ? key : top,
                          depth + 1))
                return false;
        }
        fputc('}', f);
        return true;
    default:
        return true;
    }
}

/* SHA-256 of the rig's tree without its bus endpoints. */
int rig_digest(const char *text, size_t len, char hex[65])
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    int rc = f == NULL ? -ENOMEM : 0;
    if (f != NULL) {
        if (!put_node(f, &doc, yaml_document_get_root_node(&doc), NULL, 0))
            rc = -EINVAL;
        if (fclose(f) != 0 && rc == 0)
            rc = -ENOMEM;
    }
    if (rc == 0)
        sha256_hex(buf, size, hex);
    free(buf);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}
