/* One Check suite per module; each lives in tests/unit/test_<module>.c. */
#ifndef RETRYSAFE_TEST_SUITES_H
#define RETRYSAFE_TEST_SUITES_H

#include <check.h>

Suite *http_suite(void);
Suite *http_response_suite(void);
Suite *config_suite(void);
Suite *key_suite(void);
Suite *secret_suite(void);
Suite *outbound_suite(void);
Suite *alpn_suite(void);
Suite *canon_suite(void);
Suite *journal_suite(void);
Suite *guard_suite(void);
Suite *seen_filter_suite(void);
Suite *claim_table_suite(void);
Suite *private_path_suite(void);
Suite *redis_url_suite(void);

#endif
