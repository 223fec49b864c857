"""FakeTegrastats: prints tegrastats lines (Orin format) every 20 ms until terminated, as the real
tool does on a Jetson, which this machine is not. Stands in for /usr/bin/tegrastats only."""

import sys
import time

LINES = [
    "03-14-2025 10:20:05 RAM 2449/7620MB (lfb 1x4MB) SWAP 0/3810MB (cached 0MB) CPU [10%@1510,30%@1510,off,off] "
    "EMC_FREQ 1%@2133 GR3D_FREQ 40%@[1300] VIC_FREQ 729 APE 174 CPU@48.5C tj@48.5C "
    "VDD_IN 5000mW/5000mW VDD_CPU_GPU_CV 1000mW/1000mW VDD_SOC 1500mW/1500mW",
    "03-14-2025 10:20:05 RAM 2451/7620MB (lfb 1x4MB) SWAP 0/3810MB (cached 0MB) CPU [20%@1510,40%@1728,off,off] "
    "EMC_FREQ 3%@2133 GR3D_FREQ 60%@[1300] VIC_FREQ 729 APE 174 CPU@48.9C tj@49.0C "
    "VDD_IN 7000mW/6000mW VDD_CPU_GPU_CV 3000mW/2000mW VDD_SOC 1500mW/1500mW",
]

i = 0
while True:
    print(LINES[i % 2], flush=True)
    i += 1
    time.sleep(0.02)
    if len(sys.argv) > 1 and i >= int(sys.argv[1]):
        break
