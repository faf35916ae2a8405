package cortex

import "flag"

// cortexDefaults are the flags whose library default (dskit's, chosen for
// Mimir) differs from Cortex's; Cortex's wins, so that a Cortex
// configuration behaves as it did.
var cortexDefaults = map[string]string{
	// How long a stopping member waits for its leave message to spread.
	// When a whole cluster stops at once no member is left to pass it on,
	// and every process waits this long before it exits.
	"memberlist.leave-timeout": "5s",
}

// setCortexDefaults applies cortexDefaults to the registered flags.
func setCortexDefaults(f *flag.FlagSet) {
	for name, value := range cortexDefaults {
		fl := f.Lookup(name)
		if fl == nil {
			panic("cortexDefaults names an unregistered flag -" + name)
		}
		if err := fl.Value.Set(value); err != nil {
			panic("cortexDefaults: -" + name + "=" + value + ": " + err.Error())
		}
		fl.DefValue = value
	}
}
