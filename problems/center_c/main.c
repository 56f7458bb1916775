/* Fixed harness: reads the values (whitespace-separated numbers) from stdin and prints
   the centre the search's center() chooses, as one JSON number. */
#include <stdio.h>
#include "center.h"

static double values[MAX_VALUES];

int main(void) {
    int n = 0;
    while (n < MAX_VALUES && scanf("%lf", &values[n]) == 1) n++;
    if (n == 0) {
        fprintf(stderr, "no values on stdin\n");
        return 1;
    }
    printf("%.17g\n", center(values, n));
    return 0;
}
