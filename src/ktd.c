/* ktd.c: placeholder until the process model lands. */
int main(void) { return 0; }
