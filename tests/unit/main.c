/* Runs every unit suite and prints Check's summary. */
#include <check.h>
#include <stdlib.h>

#include "log.h"
#include "suites.h"

int main(void)
{
    /* Suites provoke warnings on purpose (a body over the limit, say);
     * they assert on behaviour, not on the log. */
    log_open(CONFIG_LOG_ERROR, NULL);
    SRunner *runner = srunner_create(http_suite());
    srunner_add_suite(runner, http_response_suite());
    srunner_add_suite(runner, config_suite());
    srunner_add_suite(runner, key_suite());
    srunner_add_suite(runner, secret_suite());
    srunner_add_suite(runner, outbound_suite());
    srunner_add_suite(runner, alpn_suite());
    srunner_add_suite(runner, canon_suite());
    srunner_add_suite(runner, journal_suite());
    srunner_add_suite(runner, guard_suite());
    srunner_add_suite(runner, seen_filter_suite());
    srunner_add_suite(runner, claim_table_suite());
    srunner_add_suite(runner, private_path_suite());
    srunner_add_suite(runner, redis_url_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
