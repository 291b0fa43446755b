/* check_sse: placeholder, filled below */
#include <check.h>
int main(void) { return 0; }
