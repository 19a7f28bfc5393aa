/* libvirt_domain_xml: the bellows channel and the limits from domain XML fixtures in
 * tests/data/libvirt/ (run from the source root), sizes in libvirt's units. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/libvirt/libvirt_domain_xml.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

static const struct libvirt_domain_defaults defaults = {.floor_bytes = 128 * MiB, .weight = 100};

static char *read_fixture(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), "tests/data/libvirt/%s", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(65536);
    assert_non_null(buf);
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    return buf;
}

static int parse_fixture(const char *name, struct libvirt_domain_info *info)
{
    size_t len;
    char *xml = read_fixture(name, &len);
    int err = libvirt_domain_xml_parse(xml, len, &defaults, info);
    free(xml);
    return err;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        fail_msg("\"%s\" not in \"%s\"", needle, haystack);
}

static void test_full(void **state)
{
    (void)state;
    struct libvirt_domain_info info;
    assert_int_equal(parse_fixture("full.xml", &info), 0);
    assert_string_equal(info.name, "web-1");
    assert_string_equal(info.uuid, "6a3c8b4e-2f1d-4c57-9e0a-1b2c3d4e5f60");
    assert_true(info.has_channel);
    /* The guest agent channel comes first and must not be taken. */
    assert_string_equal(info.channel_path, "/run/bellows/web-1.sock");
    assert_int_equal(info.memory_bytes, 4 * GiB);
    assert_int_equal(info.current_memory_bytes, 3 * GiB);
    assert_int_equal(info.floor_bytes, 1 * GiB);
    assert_int_equal(info.floor_from, LIBVIRT_LIMIT_METADATA);
    assert_int_equal(info.ceiling_bytes, 3 * GiB);
    assert_int_equal(info.ceiling_from, LIBVIRT_LIMIT_METADATA);
    assert_int_equal(info.weight, 200);
    assert_int_equal(info.weight_from, LIBVIRT_LIMIT_METADATA);
    assert_string_equal(info.errors, "");
}

static void test_no_channel(void **state)
{
    (void)state;
    struct libvirt_domain_info info;
    assert_int_equal(parse_fixture("no-channel.xml", &info), 0);
    assert_false(info.has_channel);
    assert_string_equal(info.channel_path, "");
    assert_string_equal(info.errors, "");
    /* Limits still come out: the caller decides to ignore the domain. */
    assert_int_equal(info.ceiling_bytes, 1 * GiB);
    assert_int_equal(info.floor_bytes, 128 * MiB);
}

static void test_fallback_memtune_and_memory(void **state)
{
    (void)state;
    struct libvirt_domain_info info;
    assert_int_equal(parse_fixture("fallback.xml", &info), 0);
    assert_string_equal(info.channel_path, "/run/bellows/fallback.sock");
    assert_int_equal(info.memory_bytes, 2 * GiB);
    assert_int_equal(info.current_memory_bytes, 2 * GiB); /* no currentMemory */
    assert_int_equal(info.floor_bytes, 512 * MiB);
    assert_int_equal(info.floor_from, LIBVIRT_LIMIT_MEMTUNE);
    assert_int_equal(info.ceiling_bytes, 2 * GiB);
    assert_int_equal(info.ceiling_from, LIBVIRT_LIMIT_MEMORY);
    assert_int_equal(info.weight, 100);
    assert_int_equal(info.weight_from, LIBVIRT_LIMIT_DEFAULT);
    assert_string_equal(info.errors, "");
}

static void test_defaults_and_foreign_metadata(void **state)
{
    (void)state;
    struct libvirt_domain_info info;
    assert_int_equal(parse_fixture("defaults.xml", &info), 0);
    /* <memory> without unit is KiB. */
    assert_int_equal(info.memory_bytes, 256 * MiB);
    assert_int_equal(info.current_memory_bytes, 200 * MiB);
    /* Elements of other namespaces (or none) called guest are not ours. */
    assert_int_equal(info.floor_bytes, 128 * MiB);
    assert_int_equal(info.floor_from, LIBVIRT_LIMIT_DEFAULT);
    assert_int_equal(info.ceiling_bytes, 256 * MiB);
    assert_int_equal(info.weight, 100);
    assert_string_equal(info.errors, "");
}

static void test_default_floor_clamped_to_ceiling(void **state)
{
    (void)state;
    struct libvirt_domain_defaults big = {.floor_bytes = 1 * GiB, .weight = 7};
    struct libvirt_domain_info info;
    size_t len;
    char *xml = read_fixture("defaults.xml", &len);
    assert_int_equal(libvirt_domain_xml_parse(xml, len, &big, &info), 0);
    free(xml);
    assert_int_equal(info.floor_bytes, 256 * MiB);
    assert_int_equal(info.weight, 7);
}

static void test_bad_metadata(void **state)
{
    (void)state;
    struct libvirt_domain_info info;
    assert_int_equal(parse_fixture("bad-metadata.xml", &info), 0);
    /* Every bad attribute named, with what is wrong. */
    assert_contains(info.errors, "floor=\"12X\": not a size");
    assert_contains(info.errors, "ceiling=\"4\": a unit is required");
    assert_contains(info.errors, "weight=\"0\": must be an integer 1..10000");
    assert_contains(info.errors, "colour=\"blue\": unknown attribute");
    /* And the fallbacks in force. */
    assert_true(info.has_channel);
    assert_string_equal(info.channel_path, "/run/bellows/bad.sock");
    assert_int_equal(info.floor_bytes, 256 * MiB);
    assert_int_equal(info.floor_from, LIBVIRT_LIMIT_MEMTUNE);
    assert_int_equal(info.ceiling_bytes, 2 * GiB);
    assert_int_equal(info.ceiling_from, LIBVIRT_LIMIT_MEMORY);
    assert_int_equal(info.weight, 100);
    assert_int_equal(info.weight_from, LIBVIRT_LIMIT_DEFAULT);
}

static void test_out_of_range_metadata(void **state)
{
    (void)state;
    struct libvirt_domain_info info;
    assert_int_equal(parse_fixture("out-of-range.xml", &info), 0);
    assert_contains(info.errors, "ceiling 8589934592 bytes is above <memory> 2147483648");
    assert_contains(info.errors, "floor 3221225472 bytes is above the ceiling 2147483648");
    assert_contains(info.errors, "weight=\"10001\"");
    assert_int_equal(info.ceiling_bytes, 2 * GiB);
    assert_int_equal(info.ceiling_from, LIBVIRT_LIMIT_MEMORY);
    assert_int_equal(info.floor_bytes, 128 * MiB);
    assert_int_equal(info.floor_from, LIBVIRT_LIMIT_DEFAULT);
    assert_int_equal(info.weight, 100);
}

static void test_channel_not_usable(void **state)
{
    (void)state;
    struct libvirt_domain_info info;
    assert_int_equal(parse_fixture("channel-connect.xml", &info), 0);
    assert_true(info.has_channel);
    assert_string_equal(info.channel_path, "");
    assert_contains(info.errors, "mode='connect'");

    assert_int_equal(parse_fixture("channel-pty.xml", &info), 0);
    assert_true(info.has_channel);
    assert_string_equal(info.channel_path, "");
    assert_contains(info.errors, "type='pty'");
}

static void test_not_a_domain(void **state)
{
    (void)state;
    struct libvirt_domain_info info;
    memset(&info, 0xAB, sizeof(info));
    assert_int_equal(parse_fixture("malformed.xml", &info), -EINVAL);
    assert_int_equal(parse_fixture("not-a-domain.xml", &info), -EINVAL);
    assert_int_equal(parse_fixture("no-memory.xml", &info), -EINVAL);
    assert_int_equal(libvirt_domain_xml_parse("", 0, &defaults, &info), -EINVAL);
    /* untouched on failure */
    assert_int_equal((unsigned char)info.name[0], 0xAB);
}

static void test_channel_path_too_long(void **state)
{
    (void)state;
    char path[200], xml[1024];
    struct libvirt_domain_info info;
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    snprintf(xml, sizeof(xml),
             "<domain><name>long</name><memory unit='MiB'>512</memory><devices>"
             "<channel type='unix'><source mode='bind' path='%s'/>"
             "<target type='virtio' name='org.bellows.pressure.0'/></channel>"
             "</devices></domain>",
             path);
    assert_int_equal(libvirt_domain_xml_parse(xml, strlen(xml), &defaults, &info), 0);
    assert_true(info.has_channel);
    assert_string_equal(info.channel_path, "");
    assert_contains(info.errors, "too long");
}

/* The complete domain of docs/libvirt.md parses to what the doc says. */
static void test_docs_example(void **state)
{
    (void)state;
    FILE *f = fopen("docs/libvirt.md", "rb");
    assert_non_null(f);
    char *doc = calloc(1, 1 << 17);
    assert_non_null(doc);
    size_t n = fread(doc, 1, (1 << 17) - 1, f);
    fclose(f);
    assert_true(n > 0);
    char *section = strstr(doc, "## A complete domain");
    assert_non_null(section);
    char *start = strstr(section, "```xml\n");
    assert_non_null(start);
    start += strlen("```xml\n");
    char *end = strstr(start, "```");
    assert_non_null(end);

    struct libvirt_domain_info info;
    assert_int_equal(libvirt_domain_xml_parse(start, (size_t)(end - start), &defaults, &info), 0);
    free(doc);
    assert_string_equal(info.errors, "");
    assert_string_equal(info.channel_path, "/run/bellows/web-1.sock");
    assert_int_equal(info.floor_bytes, 1 * GiB);
    assert_int_equal(info.ceiling_bytes, 3 * GiB);
    assert_int_equal(info.weight, 200);
    assert_int_equal(info.memory_bytes, 4 * GiB);
    assert_int_equal(info.current_memory_bytes, 2 * GiB);
}

static void test_sizes(void **state)
{
    (void)state;
    uint64_t b;
    assert_int_equal(libvirt_parse_size("1024M", NULL, 0, &b), 0);
    assert_int_equal(b, 1 * GiB);
    assert_int_equal(libvirt_parse_size("4G", NULL, 0, &b), 0);
    assert_int_equal(b, 4 * GiB);
    assert_int_equal(libvirt_parse_size("4GiB", NULL, 0, &b), 0);
    assert_int_equal(b, 4 * GiB);
    assert_int_equal(libvirt_parse_size("4gib", NULL, 0, &b), 0);
    assert_int_equal(b, 4 * GiB);
    assert_int_equal(libvirt_parse_size("4GB", NULL, 0, &b), 0);
    assert_int_equal(b, UINT64_C(4000000000));
    assert_int_equal(libvirt_parse_size("3k", NULL, 0, &b), 0);
    assert_int_equal(b, 3 * KiB);
    assert_int_equal(libvirt_parse_size("512MiB", NULL, 0, &b), 0);
    assert_int_equal(b, 512 * MiB);
    assert_int_equal(libvirt_parse_size("1T", NULL, 0, &b), 0);
    assert_int_equal(b, UINT64_C(1) << 40);
    assert_int_equal(libvirt_parse_size("4096bytes", NULL, 0, &b), 0);
    assert_int_equal(b, 4096);
    /* libvirt's elements: number, unit apart, KiB by default */
    assert_int_equal(libvirt_parse_size("4194304", "KiB", 1024, &b), 0);
    assert_int_equal(b, 4 * GiB);
    assert_int_equal(libvirt_parse_size("4194304", NULL, 1024, &b), 0);
    assert_int_equal(b, 4 * GiB);
    assert_int_equal(libvirt_parse_size("2", "GiB", 1024, &b), 0);
    assert_int_equal(b, 2 * GiB);
    assert_int_equal(libvirt_parse_size("18446744073709551615", "b", 1024, &b), 0);
    assert_int_equal(b, UINT64_MAX);

    b = 42;
    assert_int_equal(libvirt_parse_size("4", NULL, 0, &b), -ENOENT);
    assert_int_equal(libvirt_parse_size("12X", NULL, 0, &b), -EINVAL);
    assert_int_equal(libvirt_parse_size("G", NULL, 0, &b), -EINVAL);
    assert_int_equal(libvirt_parse_size("", NULL, 0, &b), -EINVAL);
    assert_int_equal(libvirt_parse_size("-1G", NULL, 0, &b), -EINVAL);
    assert_int_equal(libvirt_parse_size(" 1G", NULL, 0, &b), -EINVAL);
    assert_int_equal(libvirt_parse_size("1 G", NULL, 0, &b), -EINVAL);
    assert_int_equal(libvirt_parse_size("1G", "KiB", 1024, &b), -EINVAL);
    assert_int_equal(libvirt_parse_size("16E", NULL, 0, &b), -ERANGE);
    assert_int_equal(libvirt_parse_size("18446744073709551616", "b", 0, &b), -ERANGE);
    assert_int_equal(libvirt_parse_size(NULL, NULL, 0, &b), -EINVAL);
    assert_int_equal(b, 42); /* untouched on failure */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_no_channel),
        cmocka_unit_test(test_fallback_memtune_and_memory),
        cmocka_unit_test(test_defaults_and_foreign_metadata),
        cmocka_unit_test(test_default_floor_clamped_to_ceiling),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_out_of_range_metadata),
        cmocka_unit_test(test_channel_not_usable),
        cmocka_unit_test(test_not_a_domain),
        cmocka_unit_test(test_channel_path_too_long),
        cmocka_unit_test(test_docs_example),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
