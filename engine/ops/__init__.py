"""The registered ops, grouped by kind; each module registers its ops when imported (the
package `gradserve.engine` imports them all)."""
