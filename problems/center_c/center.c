#include "center.h"

double center(const double *values, int n) {
    double sum = 0.0, low = values[0], high = values[0];
    for (int i = 0; i < n; i++) {
        sum += values[i];
        if (values[i] < low) low = values[i];
        if (values[i] > high) high = values[i];
    }
    double mean = sum / n;
    // EVOLVE-BLOCK-START
    double shift = 0.0;  /* 0: the mean; negative moves towards the smallest value */
    double spread = 0.0; /* weight of the mid-range */
    return mean + shift * (mean - low) + spread * (0.5 * (low + high) - mean);
    // EVOLVE-BLOCK-END
}
