// conq/conq.hpp
//
// Umbrella header: every public conqueue header. Include the individual
// headers instead to keep compile times down.
#pragma once

#include "conq/policy.hpp"       // IWYU pragma: export
#include "conq/spsc_ring.hpp"    // IWYU pragma: export
#include "conq/mpmc_ring.hpp"    // IWYU pragma: export
#include "conq/priority_queue.hpp"  // IWYU pragma: export
#include "conq/delay_queue.hpp"     // IWYU pragma: export
#include "conq/queue.hpp"        // IWYU pragma: export
#include "conq/shared_ring.hpp"  // IWYU pragma: export
#include "conq/durable/log.hpp"  // IWYU pragma: export
#include "conq/durable/queue.hpp"  // IWYU pragma: export
#include "conq/broker/broker.hpp"   // IWYU pragma: export (and the three parts)
#include "conq/version.hpp"      // IWYU pragma: export
