/* Test-only stand-in for bcryptprimitives.dll under Wine 8, which lacks ProcessPrng.
 *
 * Rust's standard library (1.78 and later) gets its randomness on Windows from
 * bcryptprimitives!ProcessPrng, which every Windows 10 and 11 has. Debian 12's Wine 8 does not, so a
 * Tongban exe under that Wine stops at start. Placed next to the exe for the Wine smoke test only (it
 * is never installed on a real PC), this DLL answers ProcessPrng from advapi32!SystemFunction036
 * (RtlGenRandom), which Wine does have. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
